"""Region-level helpers: score rules, and predictions mapped back through resize and flip."""

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose

from up2core.regions import boxes_to_original, combine_scores, masks_to_original


def test_score_rules():
    objectness = torch.tensor([0.0, 2.0])  # sigmoid: 0.5, 0.88
    probs = torch.tensor([[0.8, 0.2], [0.1, 0.9]])
    product = combine_scores(objectness, probs, 'product')
    assert torch.allclose(product, objectness.sigmoid()[:, None] * probs)
    assert torch.allclose(combine_scores(objectness, probs, 'geometric'), product.sqrt())
    assert torch.equal(combine_scores(objectness, probs, 'class'), probs)
    with pytest.raises(ValueError, match='score_rule'):
        combine_scores(objectness, probs, 'max')


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_boxes_and_masks_map_back_through_resize_and_flip(direction):
    """Run mmdet's own Resize + RandomFlip on an image with one object, take the transformed
    ground truth as if it were the prediction, and map it back: it must land on the original."""
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.registry import DefaultScope
    height, width = 90, 150
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[20:50, 30:80] = 1
    results = dict(img=np.zeros((height, width, 3), dtype=np.uint8), img_shape=(height, width),
                   ori_shape=(height, width),
                   gt_bboxes=HorizontalBoxes(torch.tensor([[30., 20., 80., 50.]])),
                   gt_masks=BitmapMasks(mask[None], height, width))
    with DefaultScope.overwrite_default_scope('mmdet'):  # not left set for later tests
        pipeline = Compose([dict(type='Resize', scale=(128, 128), keep_ratio=True),
                            dict(type='RandomFlip', prob=1.0, direction=direction)])
        out = pipeline(results)
    assert out['flip'] and out['img_shape'] != (height, width)
    meta = {k: out[k] for k in ('img_shape', 'ori_shape', 'scale_factor', 'flip',
                                'flip_direction')}
    back = boxes_to_original(out['gt_bboxes'].tensor, meta)
    assert torch.allclose(back, torch.tensor([[30., 20., 80., 50.]]), atol=1.0), back
    # the transformed mask as logits on a padded 128 x 128 canvas
    h, w = out['img_shape']
    canvas = torch.full((1, 128, 128), -10.0)
    canvas[0, :h, :w] = torch.from_numpy(out['gt_masks'].masks[0]).float() * 20 - 10
    restored = masks_to_original(canvas, (128, 128), meta)[0].numpy()
    assert restored.shape == (height, width)
    iou = (restored & mask.astype(bool)).sum() / (restored | mask.astype(bool)).sum()
    assert iou > 0.9, iou


def test_boxes_are_clipped_to_the_image():
    meta = dict(img_shape=(50, 100), ori_shape=(100, 200), scale_factor=(0.5, 0.5))
    back = boxes_to_original(torch.tensor([[-10., -10., 120., 60.]]), meta)
    assert back.tolist() == [[0.0, 0.0, 200.0, 100.0]]


def test_model_regions_give_features_and_boxes_in_input_pixels():
    from tests.plugins.conftest import tiny_region_model
    from up2core.regions import Regions

    model = tiny_region_model({'detection': dict(type='detection', class_names=['a', 'b'])})
    model.eval()
    inputs = torch.zeros(2, 3, 64, 96)
    with torch.no_grad():
        regions = model.regions(model.encode_image(inputs), (64, 96))
    assert isinstance(regions, Regions) and regions.canvas == (64, 96)
    assert regions.features.shape == (2, 5, 32) and regions.boxes.shape == (2, 5, 4)
    assert regions.objectness.shape == (2, 5) and regions.mask_logits.shape[:2] == (2, 5)
    boxes = regions.boxes
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    assert boxes[..., 0::2].min() >= -1 and boxes[..., 0::2].max() <= 97
    meta = dict(img_shape=(64, 96), scale_factor=(0.5, 0.5), ori_shape=(128, 192))
    assert torch.allclose(regions.boxes_on_original(0, meta),
                          boxes_to_original(boxes[0], meta))
    assert regions.masks_on_original(1, meta, torch.tensor([0, 2])).shape == (2, 128, 192)


def test_a_region_task_without_boxes_in_its_samples_says_how_to_pack_them():
    from mmengine.structures import BaseDataElement

    from up2core.regions import RegionTaskBase

    class Grounding(RegionTaskBase):
        def loss(self, model, inputs, data_samples):
            return {}

        def predict(self, model, inputs, data_samples):
            return data_samples

    task = Grounding()
    task.name = 'grounding'
    with pytest.raises(ValueError, match=r'PackUP2Inputs\(pack_instances=True\)'):
        task.gt_instances([BaseDataElement(metainfo=dict(task='grounding'))])


def test_labels_stay_inside_the_picture():
    from up2core.drawing import label_position

    canvas = (384, 384)
    # a box at the top right corner: the label goes inside the box's top, moved left
    x, y = label_position((370.0, 0.0), (80, 17), canvas)
    assert (x, y) == (304.0, 0.0)
    # room above the box: the label sits above it
    assert label_position((10.0, 100.0), (80, 17), canvas) == (10.0, 83.0)
    # a box at the bottom edge with no room above: never below the picture
    assert label_position((0.0, 380.0), (80, 17), (384, 384))[1] <= 384 - 17
