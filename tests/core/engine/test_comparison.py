"""up2 compare: runs side by side from their results.csv (or an older run's metrics.jsonl)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from up2core.engine.comparison import compare_runs, read_run, summary_rows
from up2core.engine.results import read_table, write_table
from up2core.errors import UserError


def _run(folder, top1, steps=(10, 20, 30), mAP=None):
    folder.mkdir(parents=True)
    rows = []
    for i, step in enumerate(steps):
        row = {'step': step, 'time': 4.0 * step, 'lr': 1e-3,
               'classification/loss': 2.0 / (i + 1), 'classification/top1': top1[i],
               'classification/top5': 100.0}
        if mAP is not None:
            row.update({'detection/loss': 1.0, 'detection/bbox_mAP': mAP[i]})
        rows.append(row)
    write_table(rows, folder / 'results.csv')
    return folder


def test_the_table_holds_best_and_final_of_each_headline_metric_per_run(tmp_path):
    a = _run(tmp_path / 'seed0', [50.0, 80.0, 70.0], mAP=[0.1, 0.3, 0.4])
    b = _run(tmp_path / 'seed1', [60.0, 65.0, 90.0])
    rows = summary_rows([read_run(a), read_run(b)])
    assert rows[0] == {'run': 'seed0', 'steps': 30, 'time_s': 120,
                       'classification/top1 best': 80.0, 'classification/top1 final': 70.0,
                       'detection/bbox_mAP best': 0.4, 'detection/bbox_mAP final': 0.4}
    # top5 is not a headline of classification (Task.headline_metrics = ('top1',))
    assert rows[1]['classification/top1 final'] == 90.0 and 'detection/bbox_mAP best' not in rows[1]
    written = compare_runs([a, b], tmp_path / 'cmp', labels=['first', 'second'])
    md = written['md'].read_text().splitlines()
    assert md[:5] == ['| | first | second |', '|---|---|---|', '| steps | 30 | 30 |',
                      '| time (s) | 120 | 120 |',
                      '| classification/top1 (best / final) | 80 / 70 | 90 / 90 |']
    assert md[5] == '| detection/bbox_mAP (best / final) | 0.4 / 0.4 |  |'
    assert [r['run'] for r in read_table(written['csv'])] == ['first', 'second']
    assert Image.open(written['png']).size[0] >= 2 * 300  # a column per task


def test_the_loss_curve_is_each_tasks_total_every_step_smoothed(tmp_path):
    from up2core.engine.comparison import loss_curve

    run = read_run(_run(tmp_path / 'r', [50.0, 60.0, 70.0], mAP=[0.1, 0.2, 0.3]))
    # without steps.jsonl: the validations' averages, the total never added to its terms
    assert loss_curve(run, 'classification') == [(10, 2.0), (20, 1.0),
                                                 (30, pytest.approx(2.0 / 3, rel=1e-5))]
    lines = [{'step': i, 'classification/loss': 2.0, 'classification/loss_cls': 2.0}
             for i in range(1, 51)]
    lines += [{'step': 51, 'detection/loss_a': 1.0, 'detection/loss_b': 3.0}]
    (tmp_path / 'r' / 'steps.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines)
                                               + '{"step": 52, "classif')  # cut by a kill
    run = read_run(tmp_path / 'r')
    curve = loss_curve(run, 'classification')
    assert [x for x, _ in curve] == list(range(1, 51)) and {y for _, y in curve} == {2.0}
    assert loss_curve(run, 'detection') == [(51, 4.0)]  # no total: the sum of its terms


def test_an_older_run_is_read_from_its_metrics_history(tmp_path):
    old = tmp_path / 'old'
    old.mkdir()
    (old / 'metrics.jsonl').write_text(''.join(json.dumps(
        {'iter': step, 'classification/top1': value}) + '\n' for step, value in
        ((100, 40.0), (200, 55.0))))
    run = read_run(old)
    assert [r['step'] for r in run.rows] == [100, 200]
    assert summary_rows([run])[0]['classification/top1 best'] == 55.0


def test_what_cannot_be_compared_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match='not a directory'):
        read_run(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='no results.csv or metrics.jsonl'):
        read_run(tmp_path / 'empty')
    a = _run(tmp_path / 'a', [1.0, 2.0, 3.0])
    with pytest.raises(UserError, match='--labels: 1 labels for 2 runs'):
        compare_runs([a, a], tmp_path / 'out', labels=['x'])
    # the same folder name twice (seed0/work, seed1/work): the paths tell them apart
    for seed in (0, 1):
        _run(tmp_path / f'seed{seed}' / 'work', [1.0, 2.0, 3.0])
    written = compare_runs([tmp_path / 'seed0' / 'work', tmp_path / 'seed1' / 'work'],
                           tmp_path / 'out')
    assert str(tmp_path / 'seed1' / 'work') in written['md'].read_text()


def test_the_command_prints_the_table_and_a_mistake_is_one_error_line(tmp_path, capsys):
    from up2core.cli import main

    a = _run(tmp_path / 'seed0', [50.0, 80.0, 70.0])
    b = _run(tmp_path / 'seed1', [60.0, 65.0, 90.0])
    assert main(['compare', str(a), str(b), '--out', str(tmp_path / 'cmp')]) == 0
    out = capsys.readouterr().out
    assert '| classification/top1 (best / final) | 80 / 70 | 90 / 90 |' in out
    assert 'compare.png' in out
    assert main(['compare', str(a), str(tmp_path / 'nothing'), '--out', str(tmp_path / 'x')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'up2: error: {tmp_path / "nothing"}: not a directory; give the work dir of '
                   f'a run (what up2 train --work-dir named)']


def test_a_finetune_that_replayed_is_compared_with_its_base_on_the_bases_data(tmp_path):
    base = _run(tmp_path / 'base', [50.0, 80.0, 90.0])
    tuned = tmp_path / 'tuned'
    tuned.mkdir()
    write_table([{'step': 10, 'classification/top1': 99.0, 'replay_classification/top1': 85.0,
                  'kept/classification/top1': 94.4, 'replay_classification/loss': 0.5}],
                tuned / 'results.csv')
    (tuned / 'steps.jsonl').write_text(json.dumps(
        {'step': 1, 'classification/loss': 0.1, 'replay_classification/loss': 0.7}) + '\n')
    run = read_run(tuned)
    assert run.rows[0]['classification/top1'] == 85.0  # the base's data, as the base's column
    assert run.rows[0]['classification (own data)/top1'] == 99.0
    assert run.rows[0]['kept/classification/top1'] == 94.4
    assert run.steps[0] == {'step': 1, 'classification (own data)/loss': 0.1,
                            'classification/loss': 0.7}
    rows = summary_rows([read_run(base), run])
    assert rows[1]['classification/top1 final'] == 85.0
    assert rows[1]['classification (own data)/top1 final'] == 99.0
    assert 'classification (own data)/top1 best' not in rows[0]
