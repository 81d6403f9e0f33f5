"""Region-level tasks: the proposals of an image as ``x`` (or as candidates).

In Uni-Perceiver v2, detection and instance segmentation are the same likelihood as every other
task: each region-proposal token's output of the shared decoder is ``x``, the category names
(through the text encoder and the same decoder) are the candidates ``Y``, and boxes and masks come
straight from the proposals.  This module holds what every region-level task needs, public for
plugins (plugin API 1.2):

* :class:`Regions`: an image batch's proposals as a task uses them (decoder features, boxes in
  input pixels, objectness, mask logits); ``model.regions(image, canvas)`` returns it;
* :func:`boxes_to_original` / :func:`masks_to_original`: from the network input back to the
  original image (the pipeline's resize and flip undone);
  these three live in :mod:`up2core.structures` (the models build them) and are part of this
  module's public names;
* :class:`RegionTaskBase`: a task over regions: ground-truth instances from the samples, the
  proposal network's loss and matches, results as boxes (and masks) mapped back, their JSON,
  printout and drawing.  Subclasses decide what the regions are scored against: category
  names (:class:`RegionTask`, below: detection and segmentation), phrases (grounding), captions;
* :class:`RegionTask`: named regions, the likelihood of each proposal over category names.

**Box format.** Every box here is ``(x0, y0, x1, y1)`` in pixels, corners, floats: of the network
input (the padded batch tensor, ``canvas = (H, W)``) until :func:`boxes_to_original` maps it to
the original image (``sample.metainfo``: ``img_shape``, ``scale_factor``, ``flip``,
``ori_shape``).  The proposal network itself predicts normalised ``(cx, cy, w, h)``.

The final score of a (proposal, name) pair in :class:`RegionTask` combines the proposal's
objectness and the name's probability (``score_rule``):

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
from functools import partial

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from up2core.structures import Regions, _as_tensor, boxes_to_original, masks_to_original
from up2core.task import Task, keep_names

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


class RegionTaskBase(Task):
    """A task whose answers are regions of the image: the reusable part of region tasks.

    Gives a subclass the proposals (:meth:`encode_regions`), the proposal network's training
    and the proposals matched to each ground-truth instance (:meth:`proposal_loss`), results
    as boxes (and masks) on the original image (:meth:`instances_on_original`), and their
    JSON (:meth:`to_result`), printout (:meth:`format_result`) and picture (:meth:`draw`).
    The subclass decides what the regions are scored against and writes ``loss`` and
    ``predict``; :class:`RegionTask` (category names) is one, a grounding plugin (phrases) is
    another (see "Region-level tasks" in ``docs/writing-a-task-plugin.md``).

    Predictions are ``sample.pred_instances`` (``bboxes`` in original pixels, ``scores``,
    ``labels``, and ``masks`` for mask tasks) with ``sample.class_names``: the texts the labels
    index (category names, or a grounding sample's phrases).

    Args:
        max_per_image: regions kept per image in predictions.
        mask_threshold: probability above which a mask pixel is on.
        proposal_loss_weight: multiplies the proposal network's losses in this task's batches
            (0 leaves the proposals to other tasks).
        loss_weight, likelihood_group: see :class:`~up2core.task.Task`.
    """

    #: the task trains and predicts masks (ground truth needs ``LoadAnnotations(with_mask=True)``)
    with_masks = False

    def __init__(self, max_per_image: int = 100, mask_threshold: float = 0.5,
                 proposal_loss_weight: float = 1.0, loss_weight: float = 1.0,
                 likelihood_group: str | None = None) -> None:
        super().__init__(loss_weight=loss_weight, likelihood_group=likelihood_group)
        self.max_per_image = max_per_image
        self.mask_threshold = mask_threshold
        self.proposal_loss_weight = proposal_loss_weight

    def encode_regions(self, model, inputs: Tensor) -> Regions:
        """The proposals of the batch ``inputs`` with their decoder features."""
        return model.regions(model.encode_image(inputs), tuple(inputs.shape[-2:]))

    def gt_instances(self, data_samples: list) -> list[InstanceData]:
        """Each sample's ground truth as ``InstanceData`` (``bboxes`` float ``(x0, y0, x1,
        y1)`` input pixels, ``labels`` long, and bool ``masks`` for mask tasks, which leave out
        the instances whose mask has no pixel: a record without a mask)."""
        gts = []
        for sample in data_samples:
            if 'gt_instances' not in sample:
                raise ValueError(f"task '{self.name}' needs boxes: its pipeline must pack "
                                 f"gt_instances (LoadAnnotations(with_bbox=True), then "
                                 f"PackDetInputs or PackUP2Inputs(pack_instances=True))")
            inst = sample.gt_instances
            labels = inst.labels if 'labels' in inst else torch.zeros(len(inst.bboxes))
            gt = InstanceData(bboxes=_as_tensor(inst.bboxes).float(),
                              labels=torch.as_tensor(labels).long())
            if self.with_masks:
                if 'masks' not in inst:
                    raise ValueError(f"task '{self.name}' trains masks, but the samples have "
                                     f"none: add LoadAnnotations(with_mask=True) to its pipeline")
                masks = inst.masks
                gt.masks = masks.to_tensor(torch.bool, gt.bboxes.device) \
                    if hasattr(masks, 'to_tensor') else torch.as_tensor(masks).bool()
                # an annotation without a mask (a box-only record) is no mask target: left
                # out, as a crowd region is, rather than taught as an empty mask
                with_mask = gt.masks.flatten(1).any(1) if len(gt) else gt.masks.new_zeros(0)
                if not bool(with_mask.all()):
                    gt = gt[with_mask]
            gts.append(gt)
        return gts

    # keep the name RegionTask used before API 1.2 (private then, harmless to keep)
    _gt_instances = gt_instances

    def proposal_loss(self, model, inputs: Tensor, image, gts: list[InstanceData]
                      ) -> tuple[dict[str, Tensor], list[Tensor]]:
        """The proposal network's losses on this batch (times ``proposal_loss_weight``) and,
        per image, the index of the ground-truth instance each proposal token is matched to
        (``-1``: none): a one-to-one Hungarian matching, so each instance has one proposal."""
        rpn_losses, matches = model.proposal_loss(image, gts, tuple(inputs.shape[-2:]),
                                                  with_masks=self.with_masks)
        return {k: v * self.proposal_loss_weight for k, v in rpn_losses.items()}, matches

    def instances_on_original(self, regions: Regions, index: int, meta: dict, which: Tensor,
                              scores: Tensor, labels: Tensor) -> InstanceData:
        """``pred_instances`` of image ``index``: the proposals ``which`` with their
        ``scores`` and ``labels``, boxes (and masks) on the original image, on the CPU."""
        result = InstanceData(bboxes=regions.boxes_on_original(index, meta, which).cpu(),
                              scores=scores.detach().cpu(), labels=labels.detach().cpu())
        if self.with_masks:
            result.masks = regions.masks_on_original(index, meta, which,
                                                     self.mask_threshold).cpu()
        return result

    def to_result(self, sample) -> dict:
        """Regions as plain lists, best first: ``boxes`` (x0, y0, x1, y1 pixels), ``scores``,
        ``labels``, ``classes`` (the texts the labels index) and ``masks`` as COCO RLE for
        mask tasks."""
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
        """Boxes (and masks) with their texts and scores above ``score_threshold`` on the
        original image (RGB), labels inside the picture (:func:`up2core.drawing.draw_regions`)."""
        from up2core.drawing import draw_regions

        pred = sample.pred_instances
        keep = pred.scores >= score_threshold
        pred = pred[keep]
        names = list(sample.class_names)
        labels = [int(v) for v in pred.labels.tolist()]
        texts = [f'{names[k] if 0 <= k < len(names) else k}: {float(s):.2f}'
                 for k, s in zip(labels, pred.scores.tolist())]
        masks = pred.masks.cpu().numpy() if 'masks' in pred and len(pred) else None
        draw_regions(image, pred.bboxes.tolist(), texts, masks, colour_keys=labels
                     ).save(out_file)

    def format_result(self, result: dict, score_threshold: float = 0.3) -> list[str]:
        """One line per region above ``score_threshold``: score, text, box, and for mask
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
        return lines or [f'  (no region with score >= {score_threshold}; best '
                         f"{max(result['scores'], default=0.0):.3f})"]


class RegionTask(RegionTaskBase):
    """Named regions as likelihood over category names (base of detection and segmentation).

    Args:
        class_names: names the training labels index (the training dataset's classes, in order).
        test_class_names: names for evaluation and inference (default: ``class_names``); may
            include names never trained on.
        prompt: template a name is written into (``{}`` marks the name).
        score_rule: how objectness and name probability combine (module doc).
        max_per_image, mask_threshold, proposal_loss_weight: see :class:`RegionTaskBase`.
        loss_weight, likelihood_group: see :class:`~up2core.task.Task`.
    """

    def __init__(self, class_names: Sequence[str], test_class_names: Sequence[str] | None = None,
                 prompt: str = '{}', score_rule: str = 'product', max_per_image: int = 100,
                 mask_threshold: float = 0.5, proposal_loss_weight: float = 1.0,
                 loss_weight: float = 1.0, likelihood_group: str | None = None) -> None:
        super().__init__(max_per_image=max_per_image, mask_threshold=mask_threshold,
                         proposal_loss_weight=proposal_loss_weight, loss_weight=loss_weight,
                         likelihood_group=likelihood_group)
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

    data_layout = 'coco_instances'

    @classmethod
    def data_options(cls, layout, source, names) -> dict:
        """The training names are the train file's categories; evaluation and inference score
        the val file's too (names never trained on included)."""
        return {'class_names': list(names['train']), 'test_class_names': list(names['val'])}

    @classmethod
    def kept_names_options(cls, own, base) -> dict:
        """The base's training names after the user's (evaluation keeps the user's)."""
        return {'class_names': keep_names(own.get('class_names'), base.get('class_names'))}

    def data_names(self) -> dict[str, list[str]]:
        return {'classes': list(self.test_class_names)}

    def name_features(self, model, names: Sequence[str]) -> Tensor:
        """[M, C]: each name in the prompt through the text encoder and the shared decoder
        (cached outside training, per list of names)."""
        def compute() -> Tensor:
            prompts = [self.prompt.format(n.replace('_', ' ')) for n in names]
            return model.decode([model.text_segment(prompts, target=True)]).spe

        return self.cached_candidates(model, tuple(names), compute)

    def region_features(self, model, image) -> Tensor:
        """[B, K, C]: ``model.region_features(image)`` (kept for plugins of API 1.1)."""
        return model.region_features(image)

    def loss(self, model, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        gts = self.gt_instances(data_samples)
        image = model.encode_image(inputs)
        losses, matches = self.proposal_loss(model, inputs, image, gts)
        regions = model.region_features(image)
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
        regions = self.encode_regions(model, inputs)
        b, k, _ = regions.features.shape
        probs = model.likelihood.logits(regions.features.flatten(0, 1),
                                        self.name_features(model, names),
                                        self.likelihood_group).softmax(-1).view(b, k, -1)
        scores = combine_scores(regions.objectness, probs, self.score_rule)
        for index, sample in enumerate(data_samples):
            top = scores[index].flatten().topk(min(self.max_per_image, scores[index].numel()))
            which, labels = top.indices // len(names), top.indices % len(names)
            sample.pred_instances = self.instances_on_original(
                regions, index, sample.metainfo, which, top.values, labels)
            sample.class_names = names
        return data_samples

    def export_head(self, model, classes: Sequence[str] | None = None, **options):
        """Boxes, scores, labels (and mask logits for mask tasks) of the best
        ``max_per_image`` (proposal, name) pairs: :class:`~up2core.export.head.RegionsHead`
        over the config's test names, or ``classes``."""
        from up2core.export.head import RegionsHead

        names = list(classes) if classes else self.test_class_names
        return RegionsHead(self.name_features(model, names), self.likelihood_group,
                           partial(combine_scores, rule=self.score_rule), self.max_per_image,
                           self.with_masks, metadata={'classes': names})

    def infer(self, model, inputs: Tensor, data_samples: list,
              classes: Sequence[str] | None = None, **kwargs) -> list:
        """:meth:`predict` with an optional list of category names to look for."""
        return self.predict(model, inputs, data_samples, class_names=classes)


__all__ = ['SCORE_RULES', 'RegionTask', 'RegionTaskBase', 'Regions', 'boxes_to_original',
           'combine_scores', 'masks_to_original']
