"""Transforms every task's pipeline shares: bounding the image size (targets follow), flipping
with every registered target, packing a sample."""

from __future__ import annotations

import functools

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from up2core.data.geometry import flip_targets, resize_targets
from up2core.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                     'flip_direction')
DEFAULT_DATA_KEYS = ('gt_label', 'texts')


@TRANSFORMS.register_module()
class LimitImageSize(BaseTransform):
    """Rescale an image (aspect ratio kept) only when a side is outside ``[min_side, max_side]``,
    and every target with it.

    Training images of a dataset usually have one size; images met at inference do not.  A
    12-megapixel photo through the encoders at full size costs a minute and gigabytes, and an
    image under 32 px cannot pass the backbone's strides.  mmdet's ``Resize`` always rescales to
    its target (and would enlarge every small training image); this one leaves images within
    bounds untouched, so it is a no-op on data already at the size the model trains at.

    The resize itself is mmdet's (``mmdet.Resize`` to the computed size): boxes are scaled and
    clipped to the image, masks (bitmaps and polygons) and segmentation maps resized, the
    homography recorded, exactly as in an mmdet pipeline; targets a plugin registered in
    :data:`~up2core.registry.GEOMETRIC_TARGETS` follow too (:mod:`up2core.data.geometry`).
    Boxes are clipped to the image even when the image keeps its size (an export's box a pixel
    past the edge).

    Args:
        max_side: the longer side is brought down to this (e.g. the training image size).
        min_side: the shorter side is brought up to this; the longer side is then capped at
            ``max_side`` again, so extreme aspect ratios are squeezed rather than left too large.

    Updates ``img``, ``img_shape``, the targets and ``scale_factor`` (``(w, h)`` factors,
    multiplied into an existing one, so that ``boxes / scale_factor`` is always the file's
    coordinates); ``ori_shape`` keeps the size of the file.

    Examples:
        >>> dict(type='LimitImageSize', max_side=128)
    """

    def __init__(self, max_side: int = 1333, min_side: int = 32) -> None:
        if not 0 < min_side <= max_side:
            raise ValueError(f'need 0 < min_side <= max_side, got {min_side}, {max_side}')
        self.max_side, self.min_side = max_side, min_side
        self._resizers: dict[str, BaseTransform] = {}

    def target_size(self, height: int, width: int) -> tuple[int, int] | None:
        """``(new_h, new_w)`` for an image of this size, or None when it stays as it is."""
        scale = min(1.0, self.max_side / max(height, width))
        if min(height, width) * scale < self.min_side:
            scale = self.min_side / min(height, width)
        if scale == 1.0:
            return None
        return (min(self.max_side, max(self.min_side, round(height * scale))),
                min(self.max_side, max(self.min_side, round(width * scale))))

    def _resizer(self, interpolation: str) -> BaseTransform:
        if interpolation not in self._resizers:
            from mmdet.datasets.transforms import Resize

            self._resizers[interpolation] = Resize(scale=(1, 1), keep_ratio=False,
                                                   clip_object_border=True,
                                                   interpolation=interpolation)
        return self._resizers[interpolation]

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        size = self.target_size(h, w)
        if size is None:
            _clip_boxes(results, (h, w))
            return results
        new_h, new_w = size
        old = results.get('scale_factor', (1.0, 1.0))
        resizer = self._resizer('area' if new_h * new_w < h * w else 'bilinear')
        results['scale'] = (new_w, new_h)
        # mmdet's steps one by one: its transform() would recompute the size from `scale` only
        # when 'scale' is absent, and overwrites scale_factor rather than composing it
        resizer._resize_img(results)
        resizer._resize_bboxes(results)
        resizer._resize_masks(results)
        resizer._resize_seg(results)
        resizer._record_homography_matrix(results)
        step = results['scale_factor']
        resize_targets(results, step)
        results['scale_factor'] = (old[0] * step[0], old[1] * step[1])
        results.pop('scale', None)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(max_side={self.max_side}, min_side={self.min_side})'


def _clip_boxes(results: dict, img_shape: tuple[int, int]) -> None:
    boxes = results.get('gt_bboxes')
    if boxes is not None and hasattr(boxes, 'clip_'):
        boxes.clip_(img_shape)


@TRANSFORMS.register_module(name='RandomFlip')
def RandomFlip(*args, **kwargs):  # noqa: N802 (named as the transform it builds)
    """mmdet's ``RandomFlip`` (boxes, masks, segmentation maps, homography) that also mirrors
    every target a plugin registered in :data:`~up2core.registry.GEOMETRIC_TARGETS`.

    Same arguments as ``mmdet.RandomFlip`` (``prob``, ``direction``).  Registered as a function
    that builds the class on first use: mmdet's transforms take seconds to import, which the
    pipelines without a flip need not pay.

    Examples:
        >>> dict(type='RandomFlip', prob=0.5)
    """
    return _random_flip_class()(*args, **kwargs)


@functools.cache
def _random_flip_class() -> type:
    from mmdet.datasets.transforms import RandomFlip as MMDetRandomFlip

    class RandomFlip(MMDetRandomFlip):
        def _flip(self, results: dict) -> None:
            super()._flip(results)
            flip_targets(results, results['flip_direction'])

    RandomFlip.__module__ = __name__
    return RandomFlip


@TRANSFORMS.register_module()
class PackUP2Inputs(BaseTransform):
    """Pack a sample as ``dict(inputs=CHW uint8 tensor, data_samples=data sample)``.

    The data sample carries the task name (which routes the batch to its Task), the chosen
    ``meta_keys`` as metainfo, and the ``data_keys`` (``gt_label``, ``texts``...) as data fields.
    Every task pipeline ends with this transform.

    Boxes and masks: ``pack_instances=True`` packs ``gt_bboxes`` / ``gt_bboxes_labels`` /
    ``gt_masks`` as ``gt_instances`` through mmdet's ``PackDetInputs`` (a ``DetDataSample``)
    and then adds the ``data_keys`` and the task, so a region task with extra fields (a
    grounding task's phrases) needs this one step.  After a separate ``PackDetInputs`` step,
    this transform only tags the packed sample with the task: ``PackDetInputs`` keeps no other
    key, so ``data_keys`` given explicitly there are an error that says to use
    ``pack_instances=True`` instead.

    Args:
        task: name of the task the sample belongs to (a key of the model's ``tasks``).
        data_keys: result keys copied to the data sample as data fields (missing ones skipped:
            inference has no annotations); default ``('gt_label', 'texts')``.
        meta_keys: result keys copied to the data sample's metainfo (missing ones skipped);
            default: image id and path, original and input shapes, scale factor and flip.
        pack_instances: also pack boxes / labels / masks as ``gt_instances`` (mmdet's way).

    Examples:
        >>> dict(type='PackUP2Inputs', task='grounding', data_keys=('phrases', 'phrase_boxes'),
        ...      pack_instances=True)
    """

    def __init__(self, task: str, data_keys: tuple[str, ...] | None = None,
                 meta_keys: tuple[str, ...] = DEFAULT_META_KEYS,
                 pack_instances: bool = False) -> None:
        self.task, self.meta_keys = task, tuple(meta_keys)
        self._explicit_keys = data_keys is not None
        self.data_keys = tuple(DEFAULT_DATA_KEYS if data_keys is None else data_keys)
        self.pack_instances = pack_instances
        self._det_pack = None
        if pack_instances:
            from mmdet.datasets.transforms import PackDetInputs

            self._det_pack = PackDetInputs(meta_keys=self.meta_keys)

    def transform(self, results: dict) -> dict:
        if 'data_samples' in results and 'inputs' in results:  # packed already: tag it
            missing = [k for k in self.data_keys if k not in results]
            if self._explicit_keys and missing:
                raise ValueError(
                    f"PackUP2Inputs(task={self.task!r}) comes after another packing step "
                    f"(mmdet's PackDetInputs), which keeps no other key, so data_keys "
                    f"{missing} cannot be packed: replace both steps by PackUP2Inputs("
                    f"task={self.task!r}, data_keys={self.data_keys}, pack_instances=True)")
            for key in self.data_keys:
                if key in results:
                    results['data_samples'].set_field(results[key], key)
            results['data_samples'].set_metainfo(dict(task=self.task))
            return results
        if self._det_pack is not None:
            packed = self._det_pack.transform(dict(results))
            sample = packed['data_samples']
            sample.set_metainfo(dict(task=self.task))
        else:
            packed = {}
            if 'img' in results:
                img = np.ascontiguousarray(results['img'])
                if img.ndim == 2:
                    img = img[..., None]
                packed['inputs'] = torch.from_numpy(img).permute(2, 0, 1).contiguous()
            sample = BaseDataElement(metainfo=dict(task=self.task, **{
                k: results[k] for k in self.meta_keys if k in results}))
            packed['data_samples'] = sample
        for key in self.data_keys:
            if key in results:
                sample.set_field(results[key], key)
        return packed

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(task={self.task!r}, data_keys={self.data_keys}, '
                f'pack_instances={self.pack_instances})')
