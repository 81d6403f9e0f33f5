"""Transforms every task's pipeline shares: bounding the image size, packing a sample."""

from __future__ import annotations

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from up2core.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                     'flip_direction')
DEFAULT_DATA_KEYS = ('gt_label', 'texts')


@TRANSFORMS.register_module()
class LimitImageSize(BaseTransform):
    """Rescale an image (aspect ratio kept) only when a side is outside ``[min_side, max_side]``.

    Training images of a dataset usually have one size; images met at inference do not.  A
    12-megapixel photo through the encoders at full size costs a minute and gigabytes, and an
    image under 32 px cannot pass the backbone's strides.  mmcv's ``Resize`` always rescales to
    its target (and would enlarge every small training image); this one leaves images within
    bounds untouched, so it is a no-op on the data the model was trained on.

    Args:
        max_side: the longer side is brought down to this (e.g. the training image size).
        min_side: the shorter side is brought up to this; the longer side is then capped at
            ``max_side`` again, so extreme aspect ratios are squeezed rather than left too large.

    Updates ``img``, ``img_shape`` and ``scale_factor`` (``(w, h)`` factors, multiplied into an
    existing one); ``ori_shape`` keeps the size of the file.
    """

    def __init__(self, max_side: int = 1333, min_side: int = 32) -> None:
        if not 0 < min_side <= max_side:
            raise ValueError(f'need 0 < min_side <= max_side, got {min_side}, {max_side}')
        self.max_side, self.min_side = max_side, min_side

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if min(h, w) * scale < self.min_side:
            scale = self.min_side / min(h, w)
        if scale == 1.0:
            return results
        new_w = min(self.max_side, max(self.min_side, round(w * scale)))
        new_h = min(self.max_side, max(self.min_side, round(h * scale)))
        results['img'] = mmcv.imresize(img, (new_w, new_h), interpolation='area'
                                       if scale < 1 else 'bilinear')
        results['img_shape'] = (new_h, new_w)
        old = results.get('scale_factor', (1.0, 1.0))
        results['scale_factor'] = (old[0] * new_w / w, old[1] * new_h / h)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(max_side={self.max_side}, min_side={self.min_side})'


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
