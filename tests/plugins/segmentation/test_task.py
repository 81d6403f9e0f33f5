"""The segmentation task: masks trained and predicted; independent of the detection plugin."""

import subprocess
import sys

import torch

from tests.conftest import ROOT
from tests.plugins.conftest import region_batch

NAMES = ['red circle', 'blue square', 'green star']


def test_loss_includes_masks_and_predictions_have_original_size_masks(make_tiny_region_model):
    model = make_tiny_region_model(dict(segmentation=dict(type='segmentation',
                                                          class_names=NAMES)))
    model.train()
    inputs, samples = region_batch('segmentation', with_masks=True)
    losses = model(inputs, samples, mode='loss')
    assert {'loss_rpn_mask', 'loss_rpn_dice', 'loss_region_cls'} <= set(losses)
    assert all(torch.isfinite(v) for k, v in losses.items() if 'loss' in k)
    model.eval()
    with torch.no_grad():
        out = model(inputs, samples, mode='predict')
    pred = out[0].pred_instances
    assert pred.masks.dtype == torch.bool and pred.masks.shape[1:] == (128, 128)
    assert len(pred.masks) == len(pred.bboxes) == len(pred.scores)
    result = model.tasks['segmentation'].to_result(out[0])
    assert result['masks'][0]['size'] == [128, 128] and isinstance(result['masks'][0]['counts'],
                                                                    str)
    lines = model.tasks['segmentation'].format_result(result, score_threshold=0.0)
    area = int(pred.masks[0].sum())
    assert lines[0].endswith(f'mask {area} px') and len(lines) == len(pred.scores)


SCRIPT = '''
import torch
from up2core.registry import TASKS
from up2core.plugin import list_plugins
names = {p.name: p.status for p in list_plugins()}
assert names.get('detection') == 'disabled', names
assert 'detection' not in TASKS.module_dict and 'segmentation' in TASKS.module_dict
from tests.plugins.conftest import tiny_region_model, region_batch
model = tiny_region_model(dict(segmentation=dict(type='segmentation', class_names=['a', 'b', 'c'])))
inputs, samples = region_batch('segmentation', with_masks=True)
losses = model(inputs, samples, mode='loss')
assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))
print('ok')
'''


def test_segmentation_runs_with_the_detection_plugin_disabled():
    result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env={**__import__('os').environ, 'UP2_DISABLE_PLUGINS': 'detection'})
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-3000:]
