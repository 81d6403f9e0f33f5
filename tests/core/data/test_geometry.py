"""Targets follow their images: every packaged config's region training pipeline, on images of
any size, shape and file kind, keeps each box inside its image, on its mask, and mapped back
through ``scale_factor`` onto its annotation; a plugin's own geometric target moves too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import ROOT, plugin_set
from tests.fixtures.odd_images import IMAGES, NAMES, write_odd_images

CONFIGS = ['up2_tiny_shapes_generalist', 'up2_tiny_shapes_regions', 'up2_r50_coco_instances']


@pytest.fixture(scope='module')
def odd_images(tmp_path_factory):
    return write_odd_images(tmp_path_factory.mktemp('odd'))


def _pipelines():
    """``(config, task, pipeline)`` of every distinct region training pipeline of the configs."""
    from up2core.config import load_config

    seen, found = set(), []
    for name in CONFIGS:
        cfg = load_config(name)
        for task in ('detection', 'segmentation'):
            pipeline = cfg.train_dataloader[task].dataset.pipeline
            key = repr(pipeline)
            if key not in seen:
                seen.add(key)
                found.append(pytest.param(pipeline.to_list() if hasattr(pipeline, 'to_list')
                                          else list(pipeline), task, id=f'{name}-{task}'))
    return found


def _mask_extent(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize('pipeline,task', _pipelines())
def test_boxes_stay_on_their_images_and_masks_and_map_back_to_the_annotations(
        odd_images, pipeline, task):
    from mmengine.registry import init_default_scope

    from up2core.data.coco import CocoInstances
    from up2core.data.coco_rules import read_instances
    from up2core.structures import boxes_to_original

    init_default_scope('up2core')

    pipeline = [dict(step) for step in pipeline]
    for step in pipeline:  # both region tasks' targets: boxes and masks
        if str(step.get('type')).endswith('LoadAnnotations'):
            step['with_mask'] = True
    dataset = CocoInstances(ann_file=str(odd_images), data_prefix=dict(
        img=str(odd_images.parent / 'images') + '/'), classes=[n for _, n in NAMES],
        pipeline=pipeline, filter_cfg=dict(filter_empty_gt=False))
    truth, _ = read_instances(json.loads(odd_images.read_text()))
    worst = []
    for index in range(len(dataset)):
        torch.manual_seed(index)
        np.random.seed(index)
        sample = dataset[index]
        meta = sample['data_samples'].metainfo
        image = next(i for i in truth['images'] if i['id'] == meta['img_id'])
        expected = np.array([[x, y, x + w, y + h] for a in truth['annotations']
                             if a['image_id'] == image['id'] for x, y, w, h in [a['bbox']]])
        height, width = sample['inputs'].shape[-2:]
        assert tuple(meta['img_shape'][:2]) == (height, width)
        # the file as the json describes it (an EXIF rotation applied), before any resize
        assert tuple(meta['ori_shape'][:2]) == (image['height'], image['width']), meta
        inst = sample['data_samples'].gt_instances
        boxes = inst.bboxes.tensor if hasattr(inst.bboxes, 'tensor') else inst.bboxes
        assert len(boxes) == len(expected)
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= width).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= height).all()
        masks = inst.masks.masks
        assert masks.shape[-2:] == (height, width)
        for box, mask in zip(boxes.tolist(), masks):
            gap = np.abs(np.array(_mask_extent(mask)) - np.array(box)).max()
            worst.append(gap)
            assert gap <= 1.0, (image['file_name'], box, _mask_extent(mask))
        back = boxes_to_original(boxes.float(), meta).numpy()
        assert np.abs(back - expected).max() <= 0.05 * max(1, 1 / min(meta['scale_factor'])), \
            (image['file_name'], back, expected, meta['scale_factor'])
    print(f'{len(dataset)} images: box vs mask extent at the packed size, worst {max(worst):.2f}'
          f' px')


def test_the_odd_images_are_what_they_claim(odd_images):
    from PIL import Image

    files = sorted((odd_images.parent / 'images').iterdir())
    assert len(files) == len(IMAGES)
    modes = {f.name.split('_')[-1].split('.')[0]: Image.open(f).mode for f in files}
    assert modes['grey'] == 'L' and modes['rgba'] == 'RGBA'
    sixteen = next(f for f in files if '16bit' in f.name)
    assert cv2.imread(str(sixteen), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    exif = next(f for f in files if 'exif' in f.name)
    with Image.open(exif) as picture:  # stored turned: 160 x 120, shown 120 x 160
        assert picture.size == (160, 120) and picture.getexif()[0x0112] == 6


def test_limit_image_size_moves_every_target_as_mmdet_resize_does():
    """The same numbers as mmdet's own ``Resize`` to the size LimitImageSize picks."""
    from mmdet.datasets.transforms import Resize
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks, PolygonMasks

    from up2core.data.transforms import LimitImageSize

    def sample():
        mask = np.zeros((1, 120, 160), np.uint8)
        mask[0, 10:50, 100:160] = 1
        return dict(img=np.zeros((120, 160, 3), np.uint8), img_shape=(120, 160),
                    ori_shape=(120, 160),
                    gt_bboxes=HorizontalBoxes(np.array([[100, 10, 160, 50]], np.float32)),
                    gt_masks=BitmapMasks(mask, 120, 160),
                    gt_seg_map=np.zeros((120, 160), np.uint8))

    ours = LimitImageSize(max_side=128).transform(sample())
    theirs = Resize(scale=(128, 96), keep_ratio=False, interpolation='area').transform(sample())
    assert ours['img'].shape == theirs['img'].shape == (96, 128, 3)
    assert torch.equal(ours['gt_bboxes'].tensor, theirs['gt_bboxes'].tensor)
    assert np.array_equal(ours['gt_masks'].masks, theirs['gt_masks'].masks)
    assert ours['gt_seg_map'].shape == (96, 128)
    assert ours['scale_factor'] == pytest.approx((0.8, 0.8))
    polygons = PolygonMasks([[np.array([100, 10, 160, 10, 160, 50, 100, 50], float)]], 120, 160)
    moved = LimitImageSize(max_side=128).transform(dict(sample(), gt_masks=polygons))
    assert moved['gt_masks'].masks[0][0].tolist() == [80, 8, 128, 8, 128, 40, 80, 40]
    # an earlier resize's factor is composed, not replaced: boxes / scale_factor = the file's
    twice = LimitImageSize(max_side=64).transform(ours)
    assert twice['scale_factor'] == pytest.approx((0.4, 0.4))
    assert twice['gt_bboxes'].tensor.tolist() == [[40.0, 4.0, 64.0, 20.0]]


def test_a_plugins_own_geometric_target_follows_resize_and_flip():
    """A plugin written outside UP2 (tests/fixtures/plugin_sets/keypoints) registers
    ``gt_keypoints`` as a geometric target; UP2's resize and flip move it with the image."""
    script = (
        'import json, numpy as np\n'
        'from up2core.registry import TRANSFORMS, GEOMETRIC_TARGETS\n'
        "limit = TRANSFORMS.build(dict(type='LimitImageSize', max_side=100))\n"
        "flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0))\n"
        "r = dict(img=np.zeros((100, 200, 3), np.uint8), img_shape=(100, 200),\n"
        "         gt_keypoints=np.array([[[20.0, 10.0, 2.0], [200.0, 100.0, 1.0]]]))\n"
        'r = flip(limit(r))\n'
        "print(json.dumps(dict(points=r['gt_keypoints'].tolist(), shape=r['img'].shape,\n"
        "                      owner=GEOMETRIC_TARGETS.owners['gt_keypoints'])))\n")
    env = dict(os.environ, PYTHONPATH=str(plugin_set('keypoints')))
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['shape'] == [50, 100, 3] and out['owner'] == 'keypoints'
    # halved, then mirrored in a 100 px wide image; the visibility flag untouched
    assert out['points'] == [[[90.0, 5.0, 2.0], [0.0, 50.0, 1.0]]]


def test_browse_draws_every_box_on_its_mask(odd_images, tmp_path):
    """``up2 data browse`` draws targets where training sees them: on the odd images, through
    the main job's training pipeline, every drawn box is its mask's extent (to a pixel)."""
    from up2core.data.pictures import browse

    data = odd_images.parent / 'data.yaml'
    data.write_text('detection: {train: {ann: instances.json, images: images}}\n'
                    'segmentation: {train: {ann: instances.json, images: images}}\n')
    written = browse(data, 'up2_tiny_shapes_generalist', tmp_path / 'browse', num=len(IMAGES))
    assert len(written) == 2 * len(IMAGES)
    drawn = [json.loads(p.with_suffix('.json').read_text()) for p in written
             if p.parent.name == 'segmentation']
    gaps = []
    for picture in drawn:
        height, width = picture['image']
        assert max(height, width) <= 128
        for instance in picture['instances']:
            assert instance['mask_extent'] is not None, picture
            gaps.append(max(abs(a - b) for a, b in zip(instance['box'],
                                                       instance['mask_extent'])))
            assert 0 <= instance['box'][0] and instance['box'][2] <= width
    assert len(gaps) == 5 * len(IMAGES) and max(gaps) <= 1.0, gaps
