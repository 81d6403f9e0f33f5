"""Region-level likelihood: proposals scored against category names (detection, segmentation).

In Uni-Perceiver v2, detection and instance segmentation are the same likelihood as every other
task: each region-proposal token's output of the shared decoder is ``x``, the category names
(through the text encoder and the same decoder) are the candidates ``Y``, and boxes and masks come
straight from the proposals.  :class:`RegionTask` is that recipe, shared by every task whose
answer is a set of named regions; a plugin subclasses it (the detection plugin outputs boxes, the
segmentation plugin boxes and masks) and registers the subclass in ``TASKS``.

The final score of a (proposal, name) pair combines the proposal's objectness and the name's
probability (``score_rule``):

* ``'product'`` (default): ``sigmoid(objectness) * P(name | proposal)``: a confident name on a
  doubtful region stays low, and so does a doubtful name on a sure region;
* ``'geometric'``: ``sqrt`` of that product (same ranking per image, scores spread more evenly);
* ``'class'``: ``P(name | proposal)`` alone.

Each image keeps the ``max_per_image`` best pairs (a proposal may appear with several names, as
DETR-style detectors are evaluated).

Categories are text, so the names are a config (``class_names`` for training,
``test_class_names`` for evaluation) and an inference argument, never a trained head: names
absent from training are recognised through their text alone (open vocabulary).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

from up2core.models.proposals import cxcywh_to_xyxy
from up2core.task import Task

SCORE_RULES = ('product', 'geometric', 'class')


def combine_scores(objectness: Tensor, class_probs: Tensor, rule: str = 'product') -> Tensor:
    """Final scores [..., M] from objectness logits [...] and class probabilities [..., M]."""
    if rule == 'class':
        return class_probs
    joint = objectness.sigmoid()[..., None] * class_probs
    if rule == 'product':
        return joint
    if rule == 'geometric':
        return joint.sqrt()
    raise ValueError(f'score_rule must be one of {SCORE_RULES}, got {rule!r}')


def _as_tensor(boxes) -> Tensor:
    """mmdet's box structures (``HorizontalBoxes``) or plain tensors -> a tensor."""
    return boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(boxes)


def boxes_to_original(boxes: Tensor, meta: dict) -> Tensor:
    """Boxes (x0, y0, x1, y1) on the network's input back to the original image: clip to the
    resized image, undo the pipeline's flip, undo its resize (``scale_factor``), clip again."""
    h, w = meta['img_shape'][:2]
    boxes = boxes.clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    if meta.get('flip', False):
        direction = meta.get('flip_direction', 'horizontal')
        if direction in ('horizontal', 'diagonal'):
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if direction in ('vertical', 'diagonal'):
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
    if 'scale_factor' in meta:
        sx, sy = meta['scale_factor'][:2]
        boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
    oh, ow = meta.get('ori_shape', (h, w))[:2]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, ow)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, oh)
    return boxes


def masks_to_original(mask_logits: Tensor, canvas: tuple[int, int], meta: dict,
                      threshold: float = 0.5) -> Tensor:
    """Mask logits [N, h, w] over the padded canvas -> bool masks [N, H, W] of the original
    image: upsample to the canvas, crop the resized image, undo the flip, resize to the original
    size, threshold the probability."""
    if len(mask_logits) == 0:
        oh, ow = meta.get('ori_shape', meta['img_shape'])[:2]
        return torch.zeros(0, oh, ow, dtype=torch.bool)
    masks = F.interpolate(mask_logits[None].float(), size=canvas, mode='bilinear',
                          align_corners=False)[0]
    h, w = meta['img_shape'][:2]
    masks = masks[:, :h, :w]
    if meta.get('flip', False):
        direction = meta.get('flip_direction', 'horizontal')
        if direction in ('horizontal', 'diagonal'):
            masks = masks.flip(-1)
        if direction in ('vertical', 'diagonal'):
            masks = masks.flip(-2)
    oh, ow = meta.get('ori_shape', (h, w))[:2]
    if (oh, ow) != (h, w):
        masks = F.interpolate(masks[None], size=(oh, ow), mode='bilinear',
                              align_corners=False)[0]
    return masks.sigmoid() > threshold


class RegionTask(Task):
    """Named regions as likelihood over category names (base of detection and segmentation).

    Args:
        class_names: names the training labels index (the training dataset's classes, in order).
        test_class_names: names for evaluation and inference (default: ``class_names``); may
            include names never trained on.
        prompt: template a name is written into (``{}`` marks the name).
        with_masks: the task trains and predicts masks.
        score_rule: how objectness and name probability combine (module doc).
        max_per_image: detections kept per image.
        mask_threshold: probability above which a mask pixel is on.
        proposal_loss_weight: multiplies the proposal network's losses in this task's batches.
        loss_weight, likelihood_group: see :class:`~up2core.task.Task`.
    """

    with_masks = False

    def __init__(self, class_names: Sequence[str], test_class_names: Sequence[str] | None = None,
                 prompt: str = '{}', score_rule: str = 'product', max_per_image: int = 100,
                 mask_threshold: float = 0.5, proposal_loss_weight: float = 1.0,
                 loss_weight: float = 1.0, likelihood_group: str | None = None) -> None:
        super().__init__(loss_weight=loss_weight, likelihood_group=likelihood_group)
        if '{}' not in prompt:
            raise ValueError(f"prompt {prompt!r} has no '{{}}' for the category name")
        if score_rule not in SCORE_RULES:
            raise ValueError(f'score_rule must be one of {SCORE_RULES}, got {score_rule!r}')
        self.class_names = list(class_names)
        self.test_class_names = list(test_class_names or class_names)
        if not self.class_names:
            raise ValueError(f'{type(self).__name__} needs class_names')
        self.prompt = prompt
        self.score_rule = score_rule
        self.max_per_image = max_per_image
        self.mask_threshold = mask_threshold
        self.proposal_loss_weight = proposal_loss_weight
        self._cache: dict[tuple[str, ...], Tensor] = {}

    def clear_cache(self) -> None:
        self._cache = {}

    # ------------------------------------------------------------------ pieces

    def name_features(self, model, names: Sequence[str]) -> Tensor:
        """[M, C]: each name in the prompt through the text encoder and the shared decoder
        (cached outside training, per list of names)."""
        key = tuple(names)
        if not self.training and key in self._cache:
            return self._cache[key]
        prompts = [self.prompt.format(n.replace('_', ' ')) for n in names]
        features = model.decode([model.text_segment(prompts, target=True)]).spe
        if not self.training:
            self._cache[key] = features
        return features

    def region_features(self, model, image) -> Tensor:
        """[B, K, C]: the proposal tokens' outputs of the shared decoder, which sees the global
        and the region tokens together."""
        segments = model.image_segments(image)
        if len(segments) < 2:
            raise ValueError(f"task '{self.name}' needs region proposals: set "
                             f"model.image_encoder.proposal_generator in the config")
        return model.decode(segments).segments[-1]

    def _gt_instances(self, data_samples: list) -> list[InstanceData]:
        gts = []
        for sample in data_samples:
            inst = sample.gt_instances
            gt = InstanceData(bboxes=_as_tensor(inst.bboxes).float(),
                              labels=torch.as_tensor(inst.labels).long())
            if self.with_masks:
                if 'masks' not in inst:
                    raise ValueError(f"task '{self.name}' trains masks, but the samples have "
                                     f"none: add LoadAnnotations(with_mask=True) to its pipeline")
                masks = inst.masks
                gt.masks = masks.to_tensor(torch.bool, gt.bboxes.device) \
                    if hasattr(masks, 'to_tensor') else torch.as_tensor(masks).bool()
            gts.append(gt)
        return gts

    # ------------------------------------------------------------------ Task interface

    def loss(self, model, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        canvas = tuple(inputs.shape[-2:])
        gts = self._gt_instances(data_samples)
        image = model.encode_image(inputs)
        rpn_losses, matches = model.proposal_loss(image, gts, canvas, with_masks=self.with_masks)
        losses = {k: v * self.proposal_loss_weight for k, v in rpn_losses.items()}
        regions = self.region_features(model, image)
        names = self.name_features(model, self.class_names)
        x, targets = [], []
        for b, (match, gt) in enumerate(zip(matches, gts)):
            keep = match >= 0
            x.append(regions[b][keep])
            targets.append(gt.labels.to(match.device)[match[keep]])
        x, targets = torch.cat(x), torch.cat(targets)
        if len(x):
            losses['loss_region_cls'] = model.likelihood.loss(
                x, names, targets, self.likelihood_group, self.loss_weight)
            with torch.no_grad():
                hits = model.likelihood.logits(x, names, self.likelihood_group).argmax(-1)
                losses['acc_region_cls'] = (hits == targets).float().mean() * 100
        else:  # no object in the batch: keep every parameter in the graph (DDP)
            losses['loss_region_cls'] = regions.sum() * 0.0 + names.sum() * 0.0
        return losses

    def predict(self, model, inputs: Tensor, data_samples: list,
                class_names: Sequence[str] | None = None) -> list:
        """Fill ``pred_instances`` (``bboxes`` in original-image pixels, ``scores``,
        ``labels`` indexing the names, and ``masks`` for mask tasks) of each sample."""
        names = list(class_names) if class_names else self.test_class_names
        canvas = tuple(inputs.shape[-2:])
        image = model.encode_image(inputs)
        regions = self.region_features(model, image)
        b, k, _ = regions.shape
        probs = model.likelihood.logits(regions.flatten(0, 1), self.name_features(model, names),
                                        self.likelihood_group).softmax(-1).view(b, k, -1)
        proposals = image.proposals
        scores = combine_scores(proposals['objectness'], probs, self.score_rule)
        height, width = canvas
        scale = scores.new_tensor([width, height, width, height])
        boxes = cxcywh_to_xyxy(proposals['boxes']) * scale
        for index, sample in enumerate(data_samples):
            top = scores[index].flatten().topk(min(self.max_per_image, scores[index].numel()))
            which, labels = top.indices // len(names), top.indices % len(names)
            meta = sample.metainfo
            result = InstanceData(
                bboxes=boxes_to_original(boxes[index][which], meta).cpu(),
                scores=top.values.cpu(), labels=labels.cpu())
            if self.with_masks:
                result.masks = masks_to_original(proposals['masks'][index][which], canvas, meta,
                                                 self.mask_threshold).cpu()
            sample.pred_instances = result
            sample.class_names = names
        return data_samples

    def infer(self, model, inputs: Tensor, data_samples: list,
              classes: Sequence[str] | None = None, **kwargs) -> list:
        """:meth:`predict` with an optional list of category names to look for."""
        return self.predict(model, inputs, data_samples, class_names=classes)

    def to_result(self, sample) -> dict:
        """Detections as plain lists, best first: ``boxes`` (x0, y0, x1, y1 pixels), ``scores``,
        ``labels``, ``classes`` (and ``masks`` as COCO RLE for mask tasks)."""
        pred = sample.pred_instances
        out = {'boxes': [[round(float(v), 2) for v in box] for box in pred.bboxes],
               'scores': [float(s) for s in pred.scores],
               'labels': [int(i) for i in pred.labels],
               'classes': [sample.class_names[int(i)] for i in pred.labels]}
        if 'masks' in pred:
            import numpy as np
            from pycocotools import mask as mask_utils

            out['masks'] = []
            for mask in pred.masks.numpy():
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                out['masks'].append({'size': [int(s) for s in rle['size']],
                                     'counts': rle['counts'].decode('ascii')})
        return out

    def draw(self, image, sample, out_file: str, score_threshold: float = 0.3) -> None:
        """Boxes (and masks) with names and scores above ``score_threshold``, drawn by mmdet's
        ``DetLocalVisualizer`` on the original image."""
        from mmdet.structures import DetDataSample
        from mmdet.visualization import DetLocalVisualizer

        pred = sample.pred_instances
        keep = pred.scores >= score_threshold
        drawn = DetDataSample(pred_instances=pred[keep])
        visualizer = DetLocalVisualizer(name=f'up2-{self.name}-{id(sample)}')
        visualizer.dataset_meta = {'classes': tuple(sample.class_names)}
        visualizer.add_datasample(self.name, image, drawn, draw_gt=False, show=False,
                                  out_file=out_file, pred_score_thr=score_threshold)

    def format_result(self, result: dict, score_threshold: float = 0.3) -> list[str]:
        """One line per detection above ``score_threshold``: score, name, box, and for mask
        tasks the mask's area in pixels."""
        areas = [None] * len(result['boxes'])
        if result.get('masks'):
            from pycocotools import mask as mask_utils

            areas = [int(mask_utils.area({'size': m['size'], 'counts': m['counts'].encode()}))
                     for m in result['masks']]
        lines = [f"  {s:6.3f}  {c:<24} box {b}" + ('' if a is None else f'  mask {a} px')
                 for b, s, c, a in zip(result['boxes'], result['scores'], result['classes'],
                                       areas)
                 if s >= score_threshold]
        return lines or [f'  (no detection with score >= {score_threshold}; best '
                         f"{max(result['scores'], default=0.0):.3f})"]
