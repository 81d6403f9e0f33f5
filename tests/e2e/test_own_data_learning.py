"""Learning on data of another size: a user's COCO dataset of non-square images of six sizes (none
of them Shapes' 128 px), with names the checkpoint never saw, finetuned through ``up2 train
--data`` from the tiny checkpoint, reaches a box AP a model trained on misplaced boxes cannot.

Measured (one run each, 60 steps from the 4-step tiny checkpoint, 64 training images): box AP
on the val split 0.19 with targets that follow their images; 0.00-0.01 when the resize left the
boxes and masks behind (UP2 before issue #41)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_up2
from up2core.data.example import SIZES, write_example_data

#: box AP the finetune must reach on the example's val split (see the module docstring)
MIN_BOX_AP = 0.10
STEPS = 60


@pytest.mark.slow
def test_a_finetune_on_images_of_other_sizes_learns_where_the_boxes_are(tiny_generalist,
                                                                       tmp_path):
    _, checkpoint, _ = tiny_generalist
    data = write_example_data(tmp_path / 'mine', num_train=64, num_val=16)
    instances = json.loads((data.parent / 'annotations' / 'val.json').read_text())
    sizes = {(i['width'], i['height']) for i in instances['images']}
    assert sizes == set(SIZES) and (128, 128) in sizes and len(sizes) == 6  # not Shapes-shaped
    detection = data.parent / 'detection.yaml'
    detection.write_text('detection:\n'
                         '  train: {ann: annotations/train.json, images: images/train}\n'
                         '  val:   {ann: annotations/val.json,   images: images/val}\n')
    work = tmp_path / 'work'
    result = run_up2('train', 'up2_tiny_shapes_generalist', '--data', str(detection),
                     '--load-from', str(checkpoint), '--plain-finetune', '--work-dir', str(work),
                     '--cfg-options', f'train_cfg.max_iters={STEPS}', cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    # the console says what --data keeps of the config, in one up2: line each
    assert 'up2: --data detection.yaml keeps of the config: images at most 128 px a side, 30 ' \
           f'proposals per image, {STEPS} steps' in result.stderr, result.stderr[-3000:]
    assert ' - mmengine - INFO - ' not in result.stderr.split('up2: train:')[0]
    metrics = json.loads((work / 'metrics.json').read_text())
    print(f"box AP after {STEPS} steps on images of 6 sizes: {metrics['detection/bbox_mAP']}")
    assert metrics['detection/bbox_mAP'] >= MIN_BOX_AP, metrics
