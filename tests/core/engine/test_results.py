"""RunResultsHook: results.csv, steps.jsonl and results.png of a run, and of a test."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from up2core.engine.results import RunResultsHook, headlines, read_table, task_of, write_table


class _Optim:
    def __init__(self):
        self.lr = 1e-3

    def get_lr(self):
        return {'lr': [self.lr]}


def _runner(tmp_path, tasks=None):
    info = {}
    hub = SimpleNamespace(get_info=info.get, update_info=info.__setitem__)
    model = SimpleNamespace(tasks=tasks or {})
    return SimpleNamespace(work_dir=str(tmp_path), rank=0, iter=0, message_hub=hub,
                           optim_wrapper=_Optim(), model=model)


def _train(hook, runner, steps, val_every, start=0, total=8):
    """Training steps ``start`` to ``steps`` of a run of ``total``, alternating two tasks, a
    validation every ``val_every``."""
    for step in range(start, steps):
        runner.iter = step
        task = ('classification', 'detection')[step % 2]
        runner.message_hub.update_info('task', task)
        runner.optim_wrapper.lr = 1e-3 * (1 - step / total)
        hook.after_train_iter(runner, step, outputs={
            f'{task}/loss': torch.tensor(2.0 / (step + 1)), f'{task}/acc': torch.tensor(50.0),
            'loss': torch.tensor(2.0 / (step + 1))})
        runner.iter = step + 1
        if (step + 1) % val_every == 0:
            hook.after_val_epoch(runner, {'classification/top1': 10.0 * (step + 1),
                                          'detection/bbox_mAP': 0.05 * (step + 1),
                                          'detection/bbox_mAP_l': float('nan')})


def test_a_row_per_validation_with_losses_averaged_since_the_last_one(tmp_path):
    hook = RunResultsHook()
    runner = _runner(tmp_path)
    hook.before_train(runner)
    _train(hook, runner, 8, 4)
    hook.after_train(runner)
    rows = read_table(tmp_path / 'results.csv')
    assert [r['step'] for r in rows] == [4, 8]
    # steps 1..4: classification at 1 and 3 (losses 2/1, 2/3), detection at 2 and 4
    assert rows[0]['classification/loss'] == pytest.approx((2.0 + 2.0 / 3) / 2, rel=1e-5)
    assert rows[1]['detection/loss'] == pytest.approx((2.0 / 6 + 2.0 / 8) / 2, rel=1e-5)
    assert rows[1]['classification/top1'] == 80.0 and rows[0]['detection/bbox_mAP'] == 0.2
    assert np.isnan(rows[1]['detection/bbox_mAP_l'])  # written as nan, read back as nan
    assert 'classification/acc' not in rows[0]  # only loss terms from the steps
    assert rows[0]['lr'] == pytest.approx(1e-3 * (1 - 3 / 8)) and rows[1]['time'] >= 0
    steps = [json.loads(line) for line in (tmp_path / 'steps.jsonl').read_text().splitlines()]
    assert [s['step'] for s in steps] == list(range(1, 9))
    assert [s['trained'] for s in steps[:2]] == ['classification', 'detection']
    picture = Image.open(tmp_path / 'results.png')
    assert picture.size[0] > 400 and picture.size[1] > 250
    assert np.asarray(picture.convert('L')).std() > 5  # something is drawn
    assert not list(tmp_path.glob('.*partial*'))


def test_a_resumed_run_goes_on_from_its_checkpoint_and_drops_what_came_after(tmp_path):
    """A run killed after step 6 resumes from its checkpoint at step 4: steps 5-6 (written
    before the kill) are trained again, so the files end as an uninterrupted run's."""
    reference = tmp_path / 'reference'
    killed = tmp_path / 'killed'
    reference.mkdir()
    killed.mkdir()
    hook = RunResultsHook(draw=False)
    runner = _runner(reference)
    hook.before_train(runner)
    _train(hook, runner, 8, 4)
    hook.after_train(runner)

    hook = RunResultsHook(draw=False)
    runner = _runner(killed)
    hook.before_train(runner)
    _train(hook, runner, 6, 4)  # then the kill
    with (killed / 'steps.jsonl').open('a') as handle:
        handle.write('{"step": 7, "lo')  # a line cut by the kill
    resumed = RunResultsHook(draw=False)
    runner = _runner(killed)
    runner.iter = 4
    resumed.before_train(runner)
    _train(resumed, runner, 8, 4, start=4)
    resumed.after_train(runner)

    def without_time(rows):  # (repr: nan equals nan)
        return repr([{k: v for k, v in r.items() if k != 'time'} for r in rows])

    assert without_time(read_table(killed / 'results.csv')) == \
        without_time(read_table(reference / 'results.csv'))
    assert (killed / 'steps.jsonl').read_text() == (reference / 'steps.jsonl').read_text()


def test_columns_appear_in_first_seen_order_and_missing_cells_stay_empty(tmp_path):
    path = write_table([{'step': 1, 'a/loss': 0.5}, {'step': 2, 'b/x': 3.0}], tmp_path / 't.csv')
    assert path.read_text().splitlines() == ['step,a/loss,b/x', '1,0.5,', '2,,3']
    assert read_table(path) == [{'step': 1.0, 'a/loss': 0.5}, {'step': 2.0, 'b/x': 3.0}]


def test_each_key_belongs_to_its_task_and_headlines_follow_the_task():
    assert task_of('detection/bbox_mAP') == 'detection' and task_of('lr') is None
    assert task_of('kept/detection/bbox_mAP') == 'replay_detection'
    assert task_of('base/detection/bbox_mAP') is None  # the base's value: not this run's
    keys = ['detection/loss', 'detection/bbox_mAP', 'detection/bbox_mAP_50',
            'detection/bbox_mAP_s', 'detection/bbox_mAP_m']
    assert headlines('detection', keys, ('bbox_mAP', 'bbox_mAP_novel')) == ['detection/bbox_mAP']
    assert headlines('detection', keys) == keys[1:4]  # none named: its first three
    assert headlines('replay_detection', ['replay_detection/bbox_mAP',
                                          'kept/detection/bbox_mAP'], ('bbox_mAP',)) == \
        ['replay_detection/bbox_mAP', 'kept/detection/bbox_mAP']


def test_a_test_writes_one_row_and_a_bar_per_headline_metric(tmp_path):
    from up2_classification.task import ClassificationTask

    runner = _runner(tmp_path, tasks={'classification': ClassificationTask(['a', 'b'])})
    RunResultsHook().after_test_epoch(runner, {'classification/top1': 75.0,
                                               'classification/top5': 100.0,
                                               'detection/bbox_mAP': 0.5})
    assert read_table(tmp_path / 'test_results.csv') == [
        {'classification/top1': 75.0, 'classification/top5': 100.0, 'detection/bbox_mAP': 0.5}]
    assert Image.open(tmp_path / 'test_results.png').size[0] > 300


def test_a_panel_draws_the_total_and_the_largest_terms_only():
    from up2core.engine.results import DRAWN_LOSS_TERMS, _drawn_losses

    terms = [f'detection/loss_{i}' for i in range(10)]
    last = {k: float(i) for i, k in enumerate(terms)}
    drawn = _drawn_losses(terms + ['detection/loss'], [last])
    assert drawn[0] == 'detection/loss' and len(drawn) == 1 + DRAWN_LOSS_TERMS
    assert drawn[1:] == ['detection/loss_9', 'detection/loss_8', 'detection/loss_7']
    assert _drawn_losses(['a/loss_x'], []) == ['a/loss_x']
