"""The image encoder: backbone -> neck -> global tokens (+ region-proposal tokens).

Following Uni-Perceiver v2, an image becomes a token sequence

    image tokens = Concat(global tokens, proposal tokens)
    global tokens = Concat(AttnPool_1(F_L), ..., AttnPool_M'(F_L), Flatten(F_L))

where ``F_L`` is the last multi-scale feature map.  Backbones and necks are any registered models
(``mmdet.ResNet``, ``mmdet.SwinTransformer``, :class:`EfficientNetLite0`...; ``mmdet.ChannelMapper``
as neck).  Region proposals plug in through ``proposal_generator``: a module that takes the
multi-scale maps and returns (tokens [B, O, C], extra outputs); without one the image is its
global tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from up2core.registry import MODELS


class AttentionPool(nn.Module):
    """``M'`` attention-pooling heads over a feature map, in the manner of CLIP's AttnPool.

    Each head pools the whole map into one token with its own query: the mean feature (CLIP's
    query) plus a learned per-head offset, so that the heads can specialise.
    """

    def __init__(self, embed_dims: int, num_queries: int, num_heads: int = 8) -> None:
        super().__init__()
        self.query_offsets = nn.Parameter(torch.randn(num_queries, embed_dims) * 0.02)
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, tokens: Tensor, valid: Tensor | None = None) -> Tensor:
        """[B, N, C] -> [B, M', C]; ``valid`` [B, N] leaves padding out of the query (a masked
        mean) and out of the attention."""
        if valid is None:
            queries = tokens.mean(dim=1, keepdim=True) + self.query_offsets[None]
            pooled, _ = self.attn(queries, tokens, tokens, need_weights=False)
        else:
            weights = valid.to(tokens.dtype)[..., None]
            mean = (tokens * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(
                min=1)
            pooled, _ = self.attn(mean + self.query_offsets[None], tokens, tokens,
                                  key_padding_mask=~valid, need_weights=False)
        return self.norm(pooled)


@dataclass
class ImageTokens:
    """What the image encoder gives tasks.

    ``tokens`` [B, N, C] (global tokens, then proposal tokens), ``valid`` [B, N] bool (False:
    a token of the padding), ``num_global`` how many of them are global, ``features`` the neck's
    multi-scale maps, ``proposals`` whatever the proposal generator returned besides its tokens
    (boxes, masks...), and ``image_sizes`` [B, 2] ``(h, w)`` of each image inside a padded
    batch (None: every image fills the batch tensor).
    """

    tokens: Tensor
    valid: Tensor
    num_global: int
    features: tuple[Tensor, ...]
    proposals: dict = field(default_factory=dict)
    image_sizes: Tensor | None = None


@MODELS.register_module()
class ImageEncoder(BaseModule):
    """Backbone + neck + global tokens (+ proposal tokens).

    Args:
        backbone: config of a model returning a tuple of feature maps.
        neck: config of a model mapping them to ``embed_dims`` channels (e.g.
            ``dict(type='mmdet.ChannelMapper', in_channels=[...], out_channels=256)``).
        embed_dims: width of the image tokens.
        num_pool_tokens: ``M'``, the attention-pooling heads (0 disables them).
        flatten_last: include ``Flatten(F_L)`` in the global tokens.
        pos_grid: side of the learned position-embedding grid, resized to each map's size.
        proposal_generator: optional config of the region-proposal module (see module doc).
        channels_last: keep the images and the convolution weights in channels-last memory
            order: the same numbers (to float rounding), and on CPUs (oneDNN) convolutions,
            forward and backward, run markedly faster (``benchmarks/train_profile.py``).
    """

    def __init__(self, backbone: dict, neck: dict, embed_dims: int = 256,
                 num_pool_tokens: int = 4, flatten_last: bool = True, pos_grid: int = 16,
                 pool_heads: int = 8, proposal_generator: dict | None = None,
                 channels_last: bool = False, init_cfg=None) -> None:
        super().__init__(init_cfg)
        if num_pool_tokens <= 0 and not flatten_last:
            raise ValueError('an image needs global tokens: num_pool_tokens > 0 or flatten_last')
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.embed_dims = embed_dims
        self.flatten_last = flatten_last
        self.pos_embed = nn.Parameter(torch.randn(1, embed_dims, pos_grid, pos_grid) * 0.02)
        self.pool = AttentionPool(embed_dims, num_pool_tokens, pool_heads) \
            if num_pool_tokens > 0 else None
        self.proposal_generator = MODELS.build(proposal_generator) \
            if proposal_generator is not None else None
        self.channels_last = channels_last
        if channels_last:
            # Weights loaded later (pre-trained, checkpoints) are copied into these tensors,
            # which keep their memory order.
            self.to(memory_format=torch.channels_last)

    def _positions(self, height: int, width: int) -> Tensor:
        pos = self.pos_embed
        if pos.shape[-2:] != (height, width):
            pos = F.interpolate(pos, size=(height, width), mode='bilinear', align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def _features(self, images: Tensor) -> tuple[Tensor, ...]:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return tuple(self.neck(self.backbone(images)))

    def _enough_positions(self, images: Tensor, features: tuple[Tensor, ...]
                          ) -> tuple[Tensor, ...]:
        """``features``, or those of ``images`` enlarged until the proposal network has as many
        positions as it selects queries.

        Two-stage query selection picks the ``num_queries`` best positions of the encoder's
        maps; a 1 x 1 photo has 3 (one per level).  Enlarging the batch (bilinear, each side to
        at least 32, 64, 128... pixels) keeps what every prediction means: boxes and masks are
        fractions of the image, so they map back onto the original size unchanged.  Batches of
        ordinary images never get here."""
        generator = self.proposal_generator
        needed = int(getattr(generator, 'num_queries', 0))
        levels = list(getattr(generator, 'encoder_levels', range(len(features))))

        def positions(maps: tuple[Tensor, ...]) -> int:
            return sum(maps[i].shape[-2] * maps[i].shape[-1] for i in levels)

        side = 32
        height, width = images.shape[-2:]
        while positions(features) < needed:
            size = (max(height, side), max(width, side))
            features = self._features(F.interpolate(images, size=size, mode='bilinear',
                                                    align_corners=False))
            side *= 2
        return features

    def _features_by_size(self, images: Tensor, sizes: list[tuple[int, int]]
                          ) -> tuple[tuple[Tensor, ...], list[Tensor]]:
        """The maps of a batch of images of several sizes, each image encoded at its own size
        (no padding enters a convolution or a group norm), then padded to the batch's maps;
        and per map ``[B, h, w]`` masks, True on the padding."""
        groups: dict[tuple[int, int], list[int]] = {}
        for index, size in enumerate(sizes):
            groups.setdefault(size, []).append(index)
        encoded = {size: self._features(images[idx, :, :size[0], :size[1]])
                   for size, idx in groups.items()}
        levels = len(next(iter(encoded.values())))
        features, masks = [], []
        for level in range(levels):
            maps = [encoded[size][level] for size in groups]
            height = max(m.shape[-2] for m in maps)
            width = max(m.shape[-1] for m in maps)
            first = maps[0]
            out = first.new_zeros(len(sizes), first.shape[1], height, width)
            mask = torch.ones(len(sizes), height, width, dtype=torch.bool, device=first.device)
            for size, feat in zip(groups, maps):
                idx = groups[size]
                h, w = feat.shape[-2:]
                out[idx, :, :h, :w] = feat
                mask[idx, :h, :w] = False
            features.append(out)
            masks.append(mask)
        return tuple(features), masks

    def _padded_positions(self, mask: Tensor) -> Tensor:
        """``[B, h*w, C]`` position embeddings of each image's own map size, padded as ``mask``."""
        b, h, w = mask.shape
        out = self.pos_embed.new_zeros(b, h, w, self.embed_dims)
        valid_h = (~mask[:, :, 0]).sum(1).tolist()
        valid_w = (~mask[:, 0, :]).sum(1).tolist()
        for index, (vh, vw) in enumerate(zip(valid_h, valid_w)):
            out[index, :vh, :vw] = self._positions(vh, vw).reshape(vh, vw, -1)
        return out.flatten(1, 2)

    def forward(self, images: Tensor, image_sizes: Tensor | list | None = None) -> ImageTokens:
        """Encode a batch; ``image_sizes`` ``[(h, w), ...]`` of the images inside a padded batch
        tensor (None: each fills it).

        With images of several sizes, each is encoded at its own size and the Transformer parts
        (attention pooling, the proposal network) see a padding mask, as mmdet's DETR family
        does: an image's tokens and proposals do not depend on what it is batched with.  In
        training too (batch norm then takes its statistics per group of a size): a 100-step
        finetune on images of six sizes reached box AP 0.57 so, 0.37 with the backbone over
        the padded batch (mmdet's way; one run each)."""
        sizes = None
        if image_sizes is not None:
            sizes = [(int(h), int(w)) for h, w in (image_sizes.tolist() if
                                                   isinstance(image_sizes, Tensor)
                                                   else image_sizes)]
            if all(size == tuple(images.shape[-2:]) for size in sizes):
                sizes = None
        if sizes is None:
            return self._forward_uniform(images)
        features, masks = self._features_by_size(images, sizes)
        last, valid_last = features[-1], ~masks[-1].flatten(1)
        flat = last.flatten(2).transpose(1, 2) + self._padded_positions(masks[-1])
        parts, valid = [], []
        if self.pool is not None:
            parts.append(self.pool(flat, valid_last))
            valid.append(valid_last.new_ones(parts[-1].shape[:2]))
        if self.flatten_last:
            parts.append(flat)
            valid.append(valid_last)
        tokens = torch.cat(parts, dim=1)
        valid_t = torch.cat(valid, dim=1)
        num_global = tokens.shape[1]
        proposals: dict = {}
        if self.proposal_generator is not None:
            proposal_tokens, proposals = self._propose(features, masks)
            tokens = torch.cat([tokens, proposal_tokens], dim=1)
            valid_t = torch.cat([valid_t, valid_t.new_ones(proposal_tokens.shape[:2])], dim=1)
        return ImageTokens(tokens, valid_t, num_global, features, proposals,
                           image_sizes=torch.tensor(sizes, device=tokens.device))

    def _propose(self, features: tuple[Tensor, ...], masks: list[Tensor]):
        """The proposal generator on padded maps: with the masks when it takes them
        (``padding_masks``, as :class:`RegionProposalNetwork` does)."""
        import inspect

        generator = self.proposal_generator
        if 'padding_masks' in inspect.signature(generator.forward).parameters:
            return generator(features, padding_masks=masks)
        return generator(features)

    def _forward_uniform(self, images: Tensor) -> ImageTokens:
        features = self._features(images)
        if self.proposal_generator is not None:
            features = self._enough_positions(images, features)
        last = features[-1]
        b, c, h, w = last.shape
        flat = last.flatten(2).transpose(1, 2) + self._positions(h, w)
        parts = []
        if self.pool is not None:
            parts.append(self.pool(flat))
        if self.flatten_last:
            parts.append(flat)
        tokens = torch.cat(parts, dim=1)
        num_global = tokens.shape[1]
        proposals: dict = {}
        if self.proposal_generator is not None:
            proposal_tokens, proposals = self.proposal_generator(features)
            tokens = torch.cat([tokens, proposal_tokens], dim=1)
        valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return ImageTokens(tokens, valid, num_global, features, proposals)
