"""PackUP2Inputs: what it packs alone, with boxes, and after mmdet's PackDetInputs."""

import numpy as np
import pytest
import torch

from up2core.data.transforms import PackUP2Inputs


def _results():
    return dict(img=np.zeros((20, 30, 3), dtype=np.uint8), img_id=7, img_path='a.png',
                ori_shape=(20, 30), img_shape=(20, 30), scale_factor=(1.0, 1.0), flip=True,
                flip_direction='horizontal', phrases=['the red circle'],
                gt_bboxes=np.array([[1, 2, 10, 12]], dtype=np.float32),
                gt_bboxes_labels=np.array([0]), gt_ignore_flags=np.array([False]))


def test_default_meta_keys_include_flip():
    packed = PackUP2Inputs(task='t')(_results())
    assert packed['inputs'].shape == (3, 20, 30)
    meta = packed['data_samples'].metainfo
    assert meta['flip'] is True and meta['flip_direction'] == 'horizontal' and meta['task'] == 't'


def test_pack_instances_keeps_boxes_and_the_data_keys():
    from mmdet.structures import DetDataSample

    packed = PackUP2Inputs(task='grounding', data_keys=('phrases',), pack_instances=True)(
        _results())
    sample = packed['data_samples']
    assert isinstance(sample, DetDataSample) and sample.task == 'grounding'
    assert sample.phrases == ['the red circle'] and sample.metainfo['flip'] is True
    assert torch.equal(torch.as_tensor(sample.gt_instances.bboxes), torch.tensor([[1., 2., 10., 12.]]))


def test_after_pack_det_inputs_explicit_data_keys_are_an_error_naming_the_fix():
    from mmdet.datasets.transforms import PackDetInputs

    packed = PackDetInputs()(_results())
    with pytest.raises(ValueError, match=r"data_keys \['phrases'\] cannot be packed: replace "
                                         r'both steps by PackUP2Inputs\(.*pack_instances=True'):
        PackUP2Inputs(task='grounding', data_keys=('phrases',))(dict(packed))
    tagged = PackUP2Inputs(task='detection')(dict(packed))  # the default keys: only tagged
    assert tagged['data_samples'].task == 'detection'
