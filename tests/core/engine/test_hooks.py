"""MetricsFileHook: the latest metrics and their history, settled after a kill."""

from __future__ import annotations

import json
from types import SimpleNamespace

from up2core.engine.hooks import MetricsFileHook


def _runner(tmp_path, iteration):
    hub = SimpleNamespace(get_info=lambda key: None)
    return SimpleNamespace(work_dir=str(tmp_path), rank=0, iter=iteration, message_hub=hub)


def test_every_validation_is_one_line_of_the_history(tmp_path):
    hook = MetricsFileHook()
    for iteration, top1 in ((4, 50.0), (8, 75.0)):
        hook.after_val_epoch(_runner(tmp_path, iteration), {'classification/top1': top1})
    assert json.loads((tmp_path / 'metrics.json').read_text()) == {
        'classification/top1': 75.0, 'iter': 8}
    lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    assert [(line['iter'], line['classification/top1']) for line in lines] == [(4, 50.0),
                                                                              (8, 75.0)]
    assert hook.recorded_iteration(_runner(tmp_path, 0)) == 8
    assert not list(tmp_path.glob('.*partial'))


def test_after_a_kill_the_history_is_settled_on_resume(tmp_path):
    hook = MetricsFileHook()
    hook.after_val_epoch(_runner(tmp_path, 4), {'classification/top1': 50.0})
    history = tmp_path / 'metrics.jsonl'
    # killed between the two writes of the validation after step 8: metrics.json has it,
    # the history not, and the history's last line was cut by an earlier kill
    (tmp_path / 'metrics.json').write_text(json.dumps({'classification/top1': 75.0, 'iter': 8}))
    history.write_text(history.read_text() + '{"classification/to')
    assert hook.recorded_iteration(_runner(tmp_path, 8)) == 8
    assert [json.loads(line)['iter'] for line in history.read_text().splitlines()] == [4, 8]
    assert hook.recorded_iteration(_runner(tmp_path, 8)) == 8  # settled: nothing added twice
    assert len(history.read_text().splitlines()) == 2


def test_no_metrics_file_means_no_validation_recorded(tmp_path):
    assert MetricsFileHook().recorded_iteration(_runner(tmp_path, 4)) is None
    (tmp_path / 'metrics.json').write_text('{"iter": ')  # unreadable: as if none
    assert MetricsFileHook().recorded_iteration(_runner(tmp_path, 4)) is None
