"""What a checkpoint's weights do in a model: the load report (``up2 train --load-from``) and
the strict refusal of ``up2 test``/``infer``/``demo``/``export``."""

from __future__ import annotations

import pytest
import torch

from up2core.engine.checkpoint import LoadReport, check_fits, load_report
from up2core.errors import CheckpointError


def test_each_kind_of_tensor_is_counted():
    model = {'a': torch.zeros(2), 'b': torch.zeros(3), 'c': torch.zeros(4, 4),
             'tasks.captioning.vocab_ids': torch.zeros(0, dtype=torch.long)}
    saved = {'a': torch.ones(2), 'c': torch.ones(4, 2), 'x': torch.ones(1),
             'tasks.captioning.vocab_ids': torch.arange(7),
             'tasks.grounding.head': torch.ones(3), 'likelihood.log_scale.grounding': torch.ones(1)}
    report = LoadReport(model, saved, tasks=['captioning'])
    assert report.loaded == ['a', 'tasks.captioning.vocab_ids']  # an empty buffer fills up
    assert report.missing == ['b']
    assert report.mismatched == [('c', (4, 2), (4, 4))]
    assert report.unexpected == ['x']
    assert report.other_tasks == ['tasks.grounding.head', 'likelihood.log_scale.grounding']
    assert report.reinitialised == ['b', 'c'] and not report.exact
    summary = report.summary()
    assert summary.startswith('2 loaded, 1 missing, 1 unexpected, 1 shape-mismatched, '
                              '2 re-initialised, 2 of tasks this config leaves out (ignored)')
    assert 'missing: b' in summary and 'c [4, 2] vs [4, 4]' in summary


def test_a_new_class_list_loads_every_tensor(tmp_path):
    """Names are text, not weights: the same config with other class names (what a user's
    dataset file gives) takes a checkpoint exactly, nothing re-initialised."""
    from up2core.apis.inference import init_model

    shapes = init_model('up2_tiny_shapes_regions')
    path = tmp_path / 'shapes.pth'
    torch.save({'state_dict': shapes.state_dict(), 'meta': {}}, path)
    names = ['coin', 'tile', 'wedge']
    mine = init_model('up2_tiny_shapes_regions', cfg_options={
        'model.tasks.detection.class_names': names, 'model.tasks.detection.test_class_names':
        names, 'model.tasks.segmentation.class_names': names,
        'model.tasks.segmentation.test_class_names': names})
    assert mine.tasks['detection'].class_names == names
    report = check_fits(mine, path)
    assert report.exact and report.reinitialised == [] and len(report.loaded) > 100
    # and a model of another shape is refused by name
    other = init_model('up2_tiny_shapes_regions', cfg_options={
        'model.decoder.depth': 1})
    with pytest.raises(CheckpointError, match=r"shapes.pth' does not fit this config: .*"
                                              r'unexpected: decoder\.layers\.1'):
        check_fits(other, path)
    assert load_report(other, path).unexpected  # --partial-load: what fits, the rest named


def test_tasks_the_checkpoint_never_trained_are_named_not_missing():
    """A checkpoint trained with --tasks detection,grounding, loaded into the whole config:
    segmentation's own tensors are absent, so segmentation is an untrained task (left out by
    inference, refused by up2 test), not a fault of the weights."""
    model = {'shared': torch.zeros(2), 'likelihood.log_scale.segmentation': torch.zeros(1),
             'likelihood.log_scale.detection': torch.zeros(1),
             'tasks.segmentation.head': torch.zeros(2)}
    saved = {'shared': torch.ones(2), 'likelihood.log_scale.detection': torch.ones(1)}
    report = LoadReport(model, saved, tasks=['detection', 'segmentation'],
                        groups=['detection', 'segmentation'])
    assert report.untrained_tasks == ['segmentation']
    assert report.missing == [] and report.exact
    assert 'tasks it did not train: segmentation' in report.summary()
    # a temperature shared by two tasks is nobody's own: missing, a fault
    report = LoadReport({'likelihood.log_scale.regions': torch.zeros(1)}, {},
                        tasks=['detection', 'segmentation'], groups=['regions', 'regions'])
    assert report.untrained_tasks == [] and report.missing == ['likelihood.log_scale.regions']
