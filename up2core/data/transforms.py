"""Transforms every task's pipeline shares: packing a sample into model inputs."""

from __future__ import annotations

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from up2core.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')


@TRANSFORMS.register_module()
class PackUP2Inputs(BaseTransform):
    """Pack a sample as ``dict(inputs=CHW uint8 tensor, data_samples=BaseDataElement)``.

    The data sample carries the task name (which routes the batch to its Task), the chosen
    ``meta_keys`` as metainfo, and the ``data_keys`` (``gt_label``, ``texts``...) as data fields.
    Every task pipeline ends with this transform.  After a packing transform of another library
    (mmdet's ``PackDetInputs``, which builds ``gt_instances``), it only tags the packed sample
    with the task name.

    Args:
        task: name of the task the sample belongs to (a key of the model's ``tasks``).
        data_keys: result keys copied to the data sample as data fields (missing ones skipped).
        meta_keys: result keys copied to the data sample's metainfo (missing ones skipped).
    """

    def __init__(self, task: str, data_keys: tuple[str, ...] = ('gt_label', 'texts'),
                 meta_keys: tuple[str, ...] = DEFAULT_META_KEYS) -> None:
        self.task, self.data_keys, self.meta_keys = task, tuple(data_keys), tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'data_samples' in results and 'inputs' in results:  # packed already: tag it
            results['data_samples'].set_metainfo(dict(task=self.task))
            return results
        packed = {}
        if 'img' in results:
            img = np.ascontiguousarray(results['img'])
            if img.ndim == 2:
                img = img[..., None]
            packed['inputs'] = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        sample = BaseDataElement(metainfo=dict(task=self.task, **{
            k: results[k] for k in self.meta_keys if k in results}))
        for key in self.data_keys:
            if key in results:
                sample.set_field(results[key], key)
        packed['data_samples'] = sample
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(task={self.task!r}, data_keys={self.data_keys})'
