"""Class-agnostic region proposals: a MaskDINO-like Transformer on the neck's multi-scale maps.

Uni-Perceiver v2 encodes an image as global tokens AND general region proposals.  The proposal
network is "similar to MaskDINO, but every classifier is a binary foreground/background one": it
knows no category, so detection and segmentation of *any* category name happen later, in the
shared decoder, as likelihood over names.

:class:`RegionProposalNetwork` is built from mmdet's DINO parts and adds what DINO lacks:

* a deformable Transformer encoder (``DeformableDetrTransformerEncoder``) over the maps at
  ``encoder_levels``;
* two-stage query selection: every encoder position predicts objectness and a box; the top
  ``num_queries`` become the decoder's reference boxes (DINO's mixed query selection: learned
  content queries, selected positions);
* a DINO decoder (``DinoTransformerDecoder``) with iterative box refinement (one regression
  branch per layer);
* a mask branch (MaskDINO): per-pixel embeddings at ``mask_level`` (a stride-4 map fused with
  the upsampled first encoder level) dotted with a per-query mask embedding;
* objectness classifiers with ONE output (foreground), never category logits.

It returns ``num_proposal_tokens`` proposal tokens (the highest objectness), each
``q_sem + B(q_box) + M(q_mask)`` as the paper writes it: ``B`` = sine encoding of the box then a
linear layer, ``M`` = the mask average-pooled to ``mask_pool`` x ``mask_pool`` then a linear layer.
Box and mask enter the token detached: the geometry is trained by the proposal losses alone.

Training (:meth:`RegionProposalNetwork.loss`): Hungarian matching (mmdet's ``HungarianAssigner``)
on objectness focal + L1 + GIoU (+ mask BCE + Dice when masks are given) costs, the same terms as
losses (mmdet's ``FocalLoss``, ``L1Loss``, ``GIoULoss``, ``CrossEntropyLoss``, ``DiceLoss``), on
every decoder layer (auxiliary losses) and on the encoder's selected proposals.  ``num_queries``,
the layer counts and the number of proposal tokens are options.

Denoising (``denoising=dict(...)``, DINO's contrastive denoising, off by default): in training,
noised copies of the ground-truth boxes are decoded as extra queries and must give back their
box (positives, noise within half the box size) or be rejected as background (negatives, more
noise).  The queries come from mmdet's ``CdnQueryGenerator`` with one class ("an object"), so
no label noise; they go through the decoder in a pass of their own at loss time, groups masked from
each other, so the matching queries, the proposal tokens and inference are unchanged.  Boxes
only: MaskDINO's mask denoising is not built.

Coordinates: boxes are ``(cx, cy, w, h)`` normalised by each image's own extent.  A batch of
images of several sizes comes with padding masks (``padding_masks``, from
:class:`~up2core.models.image_encoder.ImageEncoder`): as in mmdet's DETR family, the encoder and
decoder attend to no padding and positions are normalised by ``valid_ratios``; the pixel map is
computed per image, so an image's proposals are the same alone and in any batch.

Examples:
    >>> rpn = RegionProposalNetwork(num_queries=10, num_encoder_layers=1, num_decoder_layers=2)
    >>> feats = [torch.randn(2, 256, s, s) for s in (32, 16, 8, 4)]
    >>> tokens, proposals = rpn(feats)
    >>> tokens.shape, proposals['boxes'].shape, proposals['masks'].shape
    (torch.Size([2, 10, 256]), torch.Size([2, 10, 4]), torch.Size([2, 10, 32, 32]))
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from up2core.registry import MODELS


def _mmdet():
    """mmdet's DINO building blocks (imported lazily: the core imports without mmdet's models)."""
    # mmdet 3.3's deformable encoder calls torch.meshgrid without `indexing` (its reference
    # points, 'ij' as torch defaults to): a UserWarning on every run that a user cannot act on.
    warnings.filterwarnings('ignore', message=r'torch\.meshgrid: in an upcoming release',
                            category=UserWarning)
    from mmdet.models.detectors.deformable_detr import DeformableDETR
    from mmdet.models.layers import (
        CdnQueryGenerator,
        DeformableDetrTransformerEncoder,
        DinoTransformerDecoder,
        SinePositionalEncoding,
    )
    from mmdet.models.layers.transformer.utils import MLP, coordinate_to_encoding, inverse_sigmoid
    return (DeformableDETR, DeformableDetrTransformerEncoder, DinoTransformerDecoder,
            SinePositionalEncoding, MLP, coordinate_to_encoding, inverse_sigmoid,
            CdnQueryGenerator)


def _box_branch(embed_dims: int) -> nn.Sequential:
    branch = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.ReLU(),
                           nn.Linear(embed_dims, embed_dims), nn.ReLU(),
                           nn.Linear(embed_dims, 4))
    nn.init.zeros_(branch[-1].weight)
    nn.init.zeros_(branch[-1].bias)
    return branch


def _gather(values: Tensor, order: Tensor) -> Tensor:
    """``values[b, order[b]]`` for [B, Q, ...] values and [B, K] indices."""
    index = order.view(*order.shape, *([1] * (values.dim() - 2)))
    return values.gather(1, index.expand(-1, -1, *values.shape[2:]))


def _extent(mask: Tensor) -> tuple[int, int]:
    """``(h, w)`` of the valid (False) top-left region of a ``[h, w]`` padding mask."""
    return int((~mask[:, 0]).sum()), int((~mask[0, :]).sum())


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


@MODELS.register_module()
class RegionProposalNetwork(BaseModule):
    """MaskDINO-like class-agnostic proposals (see the module doc).

    Args:
        embed_dims: width of the neck's maps, the queries and the proposal tokens.
        num_queries: decoder queries (proposals) per image.
        num_proposal_tokens: how many of them, by objectness, become tokens for the shared
            decoder (default: all).
        encoder_levels: indices of the neck maps the deformable encoder reads.
        mask_level: index of the high-resolution map for the mask branch (stride 4 in the tiny
            and paper configs), or None to use the first encoder level alone.
        num_encoder_layers, num_decoder_layers, num_heads, num_points, ffn_dims: Transformer size
            (MaskDINO: 6, 9, 8, 4, 2048).
        mask_pool: side of the pooled mask in ``M(q_mask)`` (paper: 28).
        match_costs: weights of the Hungarian costs (objectness, L1, GIoU, mask BCE, Dice).
        loss_weights: weights of the same terms as losses.
        aux_loss: add the losses of every decoder layer and of the encoder's proposals.
        denoising: DINO's contrastive denoising in training (see the module doc), e.g.
            ``dict(num_dn_queries=100, box_noise_scale=1.0)``: at most ``num_dn_queries``
            denoising queries per image (groups of noised copies of every ground truth, as
            many groups as fit), their losses weighted as the matching queries' box terms;
            ``None`` (default) trains without.
        pixel_decoder: the per-pixel embedding head of the mask branch: ``'conv'`` (default: a
            3 x 3 convolution, GroupNorm, ReLU, 1 x 1) or ``'separable'`` (the 3 x 3 made
            depthwise + 1 x 1).  At stride 4 the full 3 x 3 convolution is the largest single
            cost of the tiny model's region path (604M multiply-adds at 128 px, about 5x the
            EfficientNet-Lite0 backbone's); the separable one does 70M.
    """

    def __init__(self, embed_dims: int = 256, num_queries: int = 100,
                 num_proposal_tokens: int | None = None,
                 encoder_levels: tuple[int, ...] | None = (1, 2, 3), mask_level: int | None = 0,
                 num_encoder_layers: int = 6, num_decoder_layers: int = 6, num_heads: int = 8,
                 num_points: int = 4, ffn_dims: int = 1024, mask_pool: int = 28,
                 match_costs: dict | None = None, loss_weights: dict | None = None,
                 aux_loss: bool = True, denoising: dict | None = None,
                 pixel_decoder: str = 'conv', init_cfg=None) -> None:
        super().__init__(init_cfg)
        (DeformableDETR, Encoder, Decoder, SinePositionalEncoding, MLP, coordinate_to_encoding,
         inverse_sigmoid, CdnQueryGenerator) = _mmdet()
        self._gen_proposals = DeformableDETR.gen_encoder_output_proposals
        self._valid_ratio = DeformableDETR.get_valid_ratio
        self._coordinate_to_encoding = coordinate_to_encoding
        self._inverse_sigmoid = inverse_sigmoid
        if embed_dims != 256:
            # mmdet's DinoTransformerDecoder encodes reference boxes with 4 x 128 sine features
            # into a head sized 2 * embed_dims: it works at width 256 only.
            raise ValueError(f'RegionProposalNetwork needs embed_dims=256 (mmdet\'s DINO decoder '
                             f'is built for it), got {embed_dims}; map the neck to 256 channels')
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.num_proposal_tokens = min(num_proposal_tokens or num_queries, num_queries)
        self.encoder_levels = tuple(encoder_levels) if encoder_levels is not None else None
        self.mask_level = mask_level
        self.mask_pool = mask_pool
        self.aux_loss = aux_loss
        if self.encoder_levels is None:
            raise ValueError('give encoder_levels (indices of the neck maps the encoder reads)')
        num_levels = len(self.encoder_levels)
        self.positional_encoding = SinePositionalEncoding(num_feats=embed_dims // 2,
                                                          normalize=True, offset=0.0,
                                                          temperature=20)
        self._encoder_cfg = dict(num_layers=num_encoder_layers, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads, num_points=num_points,
                               dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=ffn_dims, ffn_drop=0.0)))
        self._decoder_cfg = dict(num_layers=num_decoder_layers, return_intermediate=True,
                                 post_norm_cfg=None, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads,
                                num_points=num_points, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=ffn_dims, ffn_drop=0.0)))
        self._encoder_cfg['layer_cfg']['self_attn_cfg']['num_levels'] = num_levels
        self._decoder_cfg['layer_cfg']['cross_attn_cfg']['num_levels'] = num_levels
        self.encoder = Encoder(**self._encoder_cfg)
        self.decoder = Decoder(**self._decoder_cfg)
        self.level_embed = nn.Parameter(torch.randn(num_levels, embed_dims) * 0.02)
        self.query_embedding = nn.Embedding(num_queries, embed_dims)
        # gen_encoder_output_proposals (reused from mmdet) reads these two by name.
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)
        # one objectness + box branch per decoder layer, and one for the encoder's proposals
        self.cls_branches = nn.ModuleList(nn.Linear(embed_dims, 1)
                                          for _ in range(num_decoder_layers + 1))
        self.reg_branches = nn.ModuleList(_box_branch(embed_dims)
                                          for _ in range(num_decoder_layers + 1))
        prior = -4.595  # objectness prior 0.01, as in focal-loss detectors
        for branch in self.cls_branches:
            nn.init.constant_(branch.bias, prior)
        self.mask_embed = MLP(embed_dims, embed_dims, embed_dims, 3)
        if pixel_decoder == 'conv':
            spatial = [nn.Conv2d(embed_dims, embed_dims, 3, padding=1)]
        elif pixel_decoder == 'separable':
            spatial = [nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims),
                       nn.Conv2d(embed_dims, embed_dims, 1)]
        else:
            from up2core.config import ConfigError

            raise ConfigError(f"pixel_decoder must be 'conv' or 'separable', got "
                              f"{pixel_decoder!r}; set model.image_encoder.proposal_generator."
                              f"pixel_decoder to one of them")
        self.pixel_decoder = nn.Sequential(
            *spatial, nn.GroupNorm(32, embed_dims), nn.ReLU(), nn.Conv2d(embed_dims, embed_dims, 1))
        self.box_proj = nn.Linear(2 * embed_dims, embed_dims)
        self.mask_proj = nn.Linear(mask_pool * mask_pool, embed_dims)
        self._build_criterion(match_costs or {}, loss_weights or {})
        #: pass the levels' sizes to the deformable layers as a list of Python ints instead of
        #: a tensor: a traced graph cannot take sizes from a tensor's values.  Only
        #: :func:`up2core.export.traceable` sets it, with layers that accept such a list.
        self.static_shapes = False
        #: sine position encodings by map size (see :meth:`_sine_positions`)
        self._sine_cache: dict[tuple, Tensor] = {}
        self.denoising = None
        if denoising is not None:
            from up2core.config import ConfigError

            if not isinstance(denoising, dict):
                raise ConfigError(f'denoising must be a dict, e.g. dict(num_dn_queries=100, '
                                  f'box_noise_scale=1.0), got {denoising!r}')
            unknown = set(denoising) - {'num_dn_queries', 'box_noise_scale'}
            if unknown:
                raise ConfigError(f'unknown denoising option(s) {sorted(unknown)}: the options '
                                  f'are num_dn_queries, box_noise_scale')
            # one class: the generator's label noise (which it requires) redraws labels among
            # the classes, so with one class it changes nothing
            self.denoising = CdnQueryGenerator(
                num_classes=1, embed_dims=embed_dims, num_matching_queries=num_queries,
                label_noise_scale=0.5, box_noise_scale=denoising.get('box_noise_scale', 1.0),
                group_cfg=dict(dynamic=True, num_groups=None,
                               num_dn_queries=denoising.get('num_dn_queries', 100)))

    # ------------------------------------------------------------------ losses (mmdet's)

    def _build_criterion(self, costs: dict, weights: dict) -> None:
        from mmdet.registry import MODELS as MMDET_MODELS
        from mmdet.registry import TASK_UTILS
        from mmengine.registry import DefaultScope

        # mmdet's assigners build their match costs by bare name: resolve them in mmdet's scope.
        with DefaultScope.overwrite_default_scope('mmdet'):
            self._build_criterion_in_scope(costs, weights, MMDET_MODELS, TASK_UTILS)

    def _build_criterion_in_scope(self, costs: dict, weights: dict, MMDET_MODELS, TASK_UTILS
                                  ) -> None:

        c = dict(objectness=2.0, l1=5.0, giou=2.0, mask=5.0, dice=5.0, **costs)
        w = dict(objectness=2.0, l1=5.0, giou=2.0, mask=5.0, dice=5.0, **weights)
        box_costs = [dict(type='FocalLossCost', weight=c['objectness']),
                     dict(type='BBoxL1Cost', weight=c['l1'], box_format='xywh'),
                     dict(type='IoUCost', iou_mode='giou', weight=c['giou'])]
        mask_costs = [dict(type='CrossEntropyLossCost', use_sigmoid=True, weight=c['mask']),
                      dict(type='DiceCost', pred_act=True, eps=1.0, weight=c['dice'])]
        self.box_assigner = TASK_UTILS.build(dict(type='HungarianAssigner',
                                                  match_costs=box_costs))
        self.mask_assigner = TASK_UTILS.build(dict(type='HungarianAssigner',
                                                   match_costs=box_costs + mask_costs))
        self.loss_objectness = MMDET_MODELS.build(dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=w['objectness']))
        self.loss_l1 = MMDET_MODELS.build(dict(type='L1Loss', loss_weight=w['l1']))
        self.loss_giou = MMDET_MODELS.build(dict(type='GIoULoss', loss_weight=w['giou']))
        self.loss_mask = MMDET_MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=True,
                                                 loss_weight=w['mask']))
        self.loss_dice = MMDET_MODELS.build(dict(type='DiceLoss', use_sigmoid=True,
                                                 activate=True, naive_dice=True, eps=1.0,
                                                 loss_weight=w['dice']))

    # ------------------------------------------------------------------ forward

    def init_weights(self) -> None:
        super().init_weights()
        from mmcv.ops import MultiScaleDeformableAttention

        for coder in (self.encoder, self.decoder):
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()

    def _flatten(self, maps: list[Tensor], masks: list[Tensor] | None = None):
        """Flattened maps, positions, level sizes and starts, valid ratios, and the flattened
        padding mask (None without padding)."""
        flat, pos, shapes = [], [], []
        for level, feat in enumerate(maps):
            b, c, h, w = feat.shape
            flat.append(feat.flatten(2).transpose(1, 2))
            # with padding, the sine encoding is normalised by each image's own extent
            pe = self._sine_positions(feat) if masks is None \
                else self.positional_encoding(masks[level])
            pos.append(pe.flatten(2).transpose(1, 2) + self.level_embed[level])
            shapes.append((h, w))
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=maps[0].device)
        level_start = torch.cat([spatial_shapes.new_zeros(1),
                                 spatial_shapes.prod(1).cumsum(0)[:-1]])
        if masks is None:
            valid_ratios = maps[0].new_ones(maps[0].shape[0], len(maps), 2)
            mask_flat = None
        else:
            valid_ratios = torch.stack([self._valid_ratio(m) for m in masks], 1)
            mask_flat = torch.cat([m.flatten(1) for m in masks], 1)
        if self.static_shapes:
            # the levels' sizes as Python ints (see ``static_shapes``)
            spatial_shapes = shapes
        return (torch.cat(flat, 1), torch.cat(pos, 1), spatial_shapes, level_start, valid_ratios,
                mask_flat)

    def _sine_positions(self, feat: Tensor) -> Tensor:
        """The sine position encoding of a map the size of ``feat`` ([B, C, H, W]).

        It has no parameters and depends on the size alone, so it is computed once per size,
        device and dtype: for the three levels of a 128 px image it took ~2 ms of 2 CPU threads
        at every call, about 2 % of the inference time (measured).  A traced graph
        (``static_shapes``) computes it in the graph, as before."""
        if self.static_shapes or torch.compiler.is_compiling():
            return self.positional_encoding(None, input=feat)
        key = (feat.shape[0], *feat.shape[-2:], feat.device, feat.dtype)
        cached = self._sine_cache.get(key)
        if cached is None:
            if len(self._sine_cache) >= 64:  # many image sizes: keep the memory bounded
                self._sine_cache.clear()
            cached = self._sine_cache[key] = self.positional_encoding(None, input=feat)
        return cached

    def _pixel_map(self, first: Tensor) -> Tensor:
        """What :meth:`_masks` dots the query embeddings with: the per-pixel embeddings in
        training; in eval, the map *before* the pixel decoder's last 1 x 1 convolution, which
        :meth:`_masks` then applies to the K query embeddings instead.

        Both are exact: a 1 x 1 convolution is one linear map per pixel and a mask logit is a
        dot product, so ``e . (W p + b) = (W^T e) . p + e . b``.  Folded, it costs K x C x C
        multiply-adds instead of H x W x C x C (30 queries against a 32 x 32 map: 34x fewer)
        -- the pixel decoder's largest cost per image at inference.  Training keeps the plain
        order: every decoder layer's masks (auxiliary losses) share the one map."""
        if self.training:
            return self.pixel_decoder(first)
        return self.pixel_decoder[:-1](first)

    def _masks(self, queries: Tensor, pixels: Tensor) -> Tensor:
        """Mask logits [B, Q, h, w] of ``queries`` [B, Q, C] over :meth:`_pixel_map`'s map."""
        embed = self.mask_embed(queries)
        if self.training:
            return torch.einsum('bqc,bchw->bqhw', embed, pixels)
        last = self.pixel_decoder[-1]
        return (torch.einsum('bqc,bchw->bqhw', embed @ last.weight.flatten(1), pixels)
                + (embed @ last.bias)[..., None, None])

    def forward(self, features: tuple[Tensor, ...] | list[Tensor],
                padding_masks: list[Tensor] | None = None) -> tuple[Tensor, dict]:
        """Multi-scale maps -> (proposal tokens [B, K, C], proposals).

        ``proposals`` holds, for the K tokens (best objectness first): ``boxes`` [B, K, 4]
        (cx, cy, w, h normalised by each image's own extent), ``objectness`` [B, K] logits,
        ``masks`` [B, K, h, w] logits at the mask level's resolution (over the batch's maps),
        ``indices`` [B, K] (query index); and under ``'layers'`` every decoder layer's outputs
        for all queries (plus ``'encoder'``), for the loss.

        ``padding_masks``: per map of ``features``, ``[B, h, w]`` True on padding (images of
        several sizes in one batch, each encoded at its own size): the encoder and the decoder
        attend to no padding, query selection never picks it, positions and boxes are
        normalised by each image's own extent (mmdet's ``valid_ratios``), and the pixel map
        and the pooled masks are computed per image, so that an image's proposals do not depend
        on its batch.
        """
        levels = self.encoder_levels
        maps = [features[i] for i in levels]
        level_masks = [padding_masks[i] for i in levels] if padding_masks is not None else None
        feat, pos, shapes, starts, ratios, mask_flat = self._flatten(maps, level_masks)
        memory = self.encoder(query=feat, query_pos=pos, key_padding_mask=mask_flat,
                              spatial_shapes=shapes, level_start_index=starts,
                              valid_ratios=ratios)
        b = memory.shape[0]
        # two-stage query selection on the encoder's positions (never on padding)
        out_memory, out_proposals = self._gen_proposals(self, memory, mask_flat, shapes)
        enc_cls = self.cls_branches[-1](out_memory)
        enc_coord_unact = self.reg_branches[-1](out_memory) + out_proposals
        rank = enc_cls[..., 0] if mask_flat is None \
            else enc_cls[..., 0].masked_fill(mask_flat, float('-inf'))
        top = rank.topk(self.num_queries, dim=1).indices
        enc_scores = enc_cls.gather(1, top[..., None])
        enc_coord_unact = enc_coord_unact.gather(1, top[..., None].expand(-1, -1, 4))
        if mask_flat is not None:  # fewer positions than queries: no infinite box comes out
            enc_coord_unact = enc_coord_unact.clamp(-10.0, 10.0)
        enc_boxes = enc_coord_unact.sigmoid()
        query = self.query_embedding.weight[None].expand(b, -1, -1)
        hidden, references = self.decoder(
            query=query, value=memory, key_padding_mask=mask_flat, self_attn_mask=None,
            reference_points=enc_coord_unact.detach().sigmoid(), spatial_shapes=shapes,
            level_start_index=starts, valid_ratios=ratios, reg_branches=self.reg_branches)
        # per-pixel embeddings: the high-resolution map + the first encoder level, upsampled.
        # The level is [B, H*W, C] in memory: viewed as [B, C, H, W] it is a channels-last map
        # without a copy, on which upsampling and the depthwise convolution take their fast
        # CPU paths (an NCHW copy cost ~2 ms per 128 px image there, measured).
        height, width = maps[0].shape[-2:]
        first = memory[:, :height * width].unflatten(1, (height, width)).permute(0, 3, 1, 2)
        pad = None
        if padding_masks is None:
            pixels = self._pixel_map(self._fuse(first, features))
        else:
            pixels = self._pixel_map_per_image(first, features, level_masks[0], padding_masks)
            pad = (padding_masks[self.mask_level] if self.mask_level is not None
                   else level_masks[0])[:, None]
        layers = []
        num_layers = len(hidden)
        for index in range(num_layers):
            last = index == num_layers - 1
            if not (last or (self.training and self.aux_loss)):
                continue
            coord = (self.reg_branches[index](hidden[index])
                     + self._inverse_sigmoid(references[index], eps=1e-3)).sigmoid()
            masks = self._masks(hidden[index], pixels)
            if pad is not None:  # no mask reaches into the padding (nor is taught there)
                masks = masks.masked_fill(pad, -20.0)
            layers.append(dict(objectness=self.cls_branches[index](hidden[index])[..., 0],
                               boxes=coord, masks=masks))
        final = layers[-1]
        order = final['objectness'].topk(self.num_proposal_tokens, dim=1).indices
        q_sem = _gather(hidden[-1], order)
        boxes, masks = _gather(final['boxes'], order), _gather(final['masks'], order)
        tokens = (q_sem + self.box_proj(self._coordinate_to_encoding(
            boxes.detach(), num_feats=self.embed_dims // 2))
            + self.mask_proj(self._pooled_masks(masks.detach(), padding_masks)))
        proposals = dict(boxes=boxes, objectness=_gather(final['objectness'], order), masks=masks,
                         indices=order, layers=layers,
                         encoder=dict(objectness=enc_scores[..., 0], boxes=enc_boxes))
        if pad is not None:  # each image's own part of the mask grid
            proposals['mask_sizes'] = torch.stack([(~pad[:, 0, :, 0]).sum(1),
                                                   (~pad[:, 0, 0, :]).sum(1)], 1)
        if self.training and self.denoising is not None:
            # what the denoising pass decodes from, at loss time (when the boxes are known)
            proposals['denoising'] = dict(value=memory, key_padding_mask=mask_flat,
                                          spatial_shapes=shapes, level_start_index=starts,
                                          valid_ratios=ratios)
        return tokens, proposals

    def _fuse(self, first: Tensor, features) -> Tensor:
        """The first encoder level, upsampled onto the mask level's map and added to it."""
        if self.mask_level is None:
            return first
        high = features[self.mask_level]
        return high + F.interpolate(first, size=high.shape[-2:], mode='bilinear',
                                    align_corners=False)

    def _pixel_map_per_image(self, first: Tensor, features, first_mask: Tensor,
                             padding_masks: list[Tensor]) -> Tensor:
        """:meth:`_pixel_map` of each image on its own extent (the pixel decoder's convolution
        and group norm see no padding), padded with zeros to the batch's map."""
        high_mask = padding_masks[self.mask_level] if self.mask_level is not None else first_mask
        out = None
        for index in range(first.shape[0]):
            h0, w0 = _extent(first_mask[index])
            hh, wh = _extent(high_mask[index])
            own = [None] * len(features)
            if self.mask_level is not None:
                own[self.mask_level] = features[self.mask_level][index:index + 1, :, :hh, :wh]
            pixels = self._pixel_map(self._fuse(first[index:index + 1, :, :h0, :w0], own))
            if out is None:
                out = pixels.new_zeros(first.shape[0], pixels.shape[1], *high_mask.shape[-2:])
            out[index:index + 1, :, :hh, :wh] = pixels
        return out

    def _pooled_masks(self, masks: Tensor, padding_masks: list[Tensor] | None) -> Tensor:
        """``M(q_mask)``'s input: each mask's probability average-pooled to ``mask_pool`` x
        ``mask_pool`` over its own image (not the padding) -> [B, K, mask_pool ** 2]."""
        if padding_masks is None:
            return F.adaptive_avg_pool2d(masks.sigmoid(), self.mask_pool).flatten(2)
        grid = padding_masks[self.mask_level] if self.mask_level is not None \
            else padding_masks[self.encoder_levels[0]]
        pooled = []
        for index in range(masks.shape[0]):
            h, w = _extent(grid[index])
            pooled.append(F.adaptive_avg_pool2d(masks[index, :, :h, :w].sigmoid(),
                                                self.mask_pool).flatten(1))
        return torch.stack(pooled)

    # ------------------------------------------------------------------ training

    def loss(self, proposals: dict, gt_instances: list[InstanceData], canvas: tuple[int, int],
             with_masks: bool = True, image_sizes: Tensor | None = None
             ) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Proposal losses, and which ground truth each proposal token was matched to.

        Args:
            proposals: what :meth:`forward` returned (in training mode).
            gt_instances: per image, ``bboxes`` [n, 4] (x0, y0, x1, y1 pixels of the canvas) and,
                with ``with_masks``, ``masks`` [n, H, W] (bool, canvas size).
            canvas: (height, width) of the padded batch.
            with_masks: add mask BCE + Dice to costs and losses.
            image_sizes: [B, 2] ``(h, w)`` of each image in the padded batch (None: the
                canvas): boxes are normalised by them, as :meth:`forward` predicts them.

        Returns:
            (losses, matches): ``matches[b]`` [K] is the index of the ground truth matched to
            each proposal token of image ``b`` by the last decoder layer, -1 for none.
        """
        height, width = canvas
        device = proposals['boxes'].device
        sizes = torch.as_tensor(image_sizes, dtype=torch.float32, device=device) \
            if image_sizes is not None else \
            torch.tensor([[height, width]] * len(gt_instances), dtype=torch.float32, device=device)
        scale = sizes[:, [1, 0, 1, 0]]  # per image: (w, h, w, h)
        mask_size = proposals['masks'].shape[-2:]
        targets = []
        for gt in gt_instances:
            target = InstanceData(bboxes=gt.bboxes.float(),
                                  labels=torch.zeros(len(gt.bboxes), dtype=torch.long,
                                                     device=gt.bboxes.device))
            if with_masks:
                # an image's masks cover its own pixels; the canvas is the padded batch, so the
                # masks are padded as the image was (bottom and right) before they are brought
                # to the prediction's resolution
                masks = gt.masks.float()
                pad_h, pad_w = height - masks.shape[-2], width - masks.shape[-1]
                if pad_h < 0 or pad_w < 0:
                    raise ValueError(f'a ground-truth mask is {tuple(masks.shape[-2:])}, larger '
                                     f'than the batch canvas {canvas}: the masks must be at '
                                     f"their image's size (img_shape)")
                if pad_h or pad_w:
                    masks = F.pad(masks, (0, pad_w, 0, pad_h))
                target.masks = F.interpolate(masks[None], size=mask_size, mode='bilinear',
                                             align_corners=False)[0] if len(masks) else \
                    masks.new_zeros(0, *mask_size)
            targets.append(target)
        losses: dict[str, Tensor] = {}
        layers = proposals['layers']
        matches: list[Tensor] = []
        for index, layer in enumerate(layers):
            last = index == len(layers) - 1
            name = '' if last else f'd{index}.'
            terms, assigned = self._layer_loss(layer, targets, scale, with_masks)
            losses.update({f'{name}{k}': v for k, v in terms.items()})
            if last:
                order = proposals['indices']
                matches = [a.gather(0, o) for a, o in zip(assigned, order)]
        if self.aux_loss:
            terms, _ = self._layer_loss(proposals['encoder'], targets, scale, False)
            losses.update({f'enc.{k}': v for k, v in terms.items()})
        if 'denoising' in proposals:
            losses.update(self._denoising_loss(proposals['denoising'], targets, scale))
        return {f'loss_rpn_{k}': v for k, v in losses.items()}, matches

    def _denoising_loss(self, inputs: dict, targets: list[InstanceData],
                        scale: Tensor) -> dict[str, Tensor]:
        """Decode noised ground-truth boxes; positives must give back their box, negatives
        are background (objectness focal loss on both, L1 + GIoU on positives)."""
        from mmdet.structures import DetDataSample

        value = inputs['value']
        if sum(len(t) for t in targets) == 0:  # nothing to denoise: zero, still in the graph
            zero = value.sum() * 0.0
            return {'dn.objectness': zero, 'dn.l1': zero, 'dn.giou': zero}
        samples = [DetDataSample(metainfo=dict(img_shape=(float(s[1]), float(s[0]))),
                                 gt_instances=InstanceData(bboxes=t.bboxes, labels=t.labels))
                   for t, s in zip(targets, scale)]
        query, boxes_unact, attn_mask, meta = self.denoising(samples)
        num = meta['num_denoising_queries']
        hidden, references = self.decoder(
            query=query, reference_points=boxes_unact.sigmoid(), self_attn_mask=attn_mask[:num, :num],
            reg_branches=self.reg_branches, **inputs)
        # the generator's layout: per group, M positive slots then M negative ones (M = the most
        # ground truths of an image); image b's ground truth j sits at slot j of each half
        groups, most = meta['num_denoising_groups'], num // (2 * meta['num_denoising_groups'])
        labels, weights, positives, gt_boxes = [], [], [], []
        for b, target in enumerate(targets):
            n = len(target)
            slot = torch.arange(n, device=value.device)
            pos = torch.cat([g * 2 * most + slot for g in range(groups)])
            label = torch.ones(num, dtype=torch.long, device=value.device)  # 1 = background
            label[pos] = 0
            weight = torch.zeros(num, device=value.device)
            weight[pos] = weight[pos + most] = 1.0  # padding slots are not supervised
            labels.append(label)
            weights.append(weight)
            positives.append(pos + b * num)
            gt_boxes.append((target.bboxes / scale[b]).repeat(groups, 1))
        label_t, weight_t = torch.cat(labels), torch.cat(weights)
        pos_t, gt_t = torch.cat(positives), torch.cat(gt_boxes)
        num_pos = max(len(pos_t), 1)
        losses = {}
        num_layers = len(hidden)
        for index in range(num_layers):
            last = index == num_layers - 1
            if not (last or self.aux_loss):
                continue
            coord = (self.reg_branches[index](hidden[index])
                     + self._inverse_sigmoid(references[index], eps=1e-3)).sigmoid()
            objectness = self.cls_branches[index](hidden[index]).reshape(-1, 1)
            pred = coord.reshape(-1, 4)[pos_t]
            name = 'dn.' if last else f'dn_d{index}.'
            losses[f'{name}objectness'] = self.loss_objectness(
                objectness, label_t, weight_t, avg_factor=num_pos)
            losses[f'{name}l1'] = self.loss_l1(pred, xyxy_to_cxcywh(gt_t), avg_factor=num_pos)
            losses[f'{name}giou'] = self.loss_giou(cxcywh_to_xyxy(pred), gt_t,
                                                   avg_factor=num_pos)
        return losses

    def _layer_loss(self, layer: dict, targets: list[InstanceData], scale: Tensor,
                    with_masks: bool) -> tuple[dict[str, Tensor], list[Tensor]]:
        use_masks = with_masks and 'masks' in layer
        assigner = self.mask_assigner if use_masks else self.box_assigner
        objectness, boxes = layer['objectness'], layer['boxes']
        labels, assigned_all = [], []
        pred_boxes, gt_boxes, pred_masks, gt_masks = [], [], [], []
        for b, target in enumerate(targets):
            pred = InstanceData(scores=objectness[b, :, None],
                                bboxes=cxcywh_to_xyxy(boxes[b]) * scale[b])
            if use_masks:
                pred.masks = layer['masks'][b]
            meta = dict(img_shape=(int(scale[b, 1]), int(scale[b, 0])))
            if len(target) == 0:
                assigned = torch.full((len(boxes[b]),), -1, dtype=torch.long,
                                      device=boxes.device)
            else:
                gt = target if use_masks else InstanceData(bboxes=target.bboxes,
                                                           labels=target.labels)
                with torch.no_grad():
                    result = assigner.assign(pred, gt, img_meta=meta)
                assigned = result.gt_inds - 1  # -1: background
            positive = assigned >= 0
            labels.append(torch.where(positive, 0, 1))  # 0 = foreground, 1 = background
            assigned_all.append(assigned)
            pred_boxes.append(boxes[b][positive])
            gt_boxes.append(target.bboxes[assigned[positive]] / scale[b])
            if use_masks:
                pred_masks.append(layer['masks'][b][positive])
                gt_masks.append(target.masks[assigned[positive]])
        num_pos = max(sum(int((a >= 0).sum()) for a in assigned_all), 1)
        label_t = torch.cat(labels)
        terms = {'objectness': self.loss_objectness(objectness.reshape(-1, 1), label_t,
                                                    avg_factor=num_pos)}
        pb, gb = torch.cat(pred_boxes), torch.cat(gt_boxes)
        terms['l1'] = self.loss_l1(pb, xyxy_to_cxcywh(gb), avg_factor=num_pos)
        terms['giou'] = self.loss_giou(cxcywh_to_xyxy(pb), gb, avg_factor=num_pos)
        if use_masks:
            pm, gm = torch.cat(pred_masks), torch.cat(gt_masks)
            if len(pm):
                terms['mask'] = self.loss_mask(pm.flatten(1), gm.flatten(1),
                                               avg_factor=num_pos * pm[0].numel())
                terms['dice'] = self.loss_dice(pm, gm, avg_factor=num_pos)
            else:
                terms['mask'] = terms['dice'] = layer['masks'].sum() * 0.0
        return terms, assigned_all
