"""Watching a run: the files every run folder gets, and the trackers of ``--vis`` read back by
their own readers (TensorBoard's event reader and its HTTP server, MLflow's client).

One real run of the main job's five tasks on the tiny Shapes set: 4 steps, a validation after
steps 2 and 4, every step logged: the command of ``docs/watching.md`` with the tiny fixture
config."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TINY_GENERALIST, run_up2

TASKS = ('classification', 'retrieval', 'detection', 'segmentation', 'captioning')


@pytest.fixture(scope='module')
def watched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('watched')
    work = tmp / 'work'
    result = run_up2('train', str(TINY_GENERALIST), '--work-dir', str(work), '--vis',
                     'tensorboard', 'mlflow', '--cfg-options', 'train_cfg.val_interval=2',
                     'default_hooks.logger.interval=1', cwd=tmp, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return work


@pytest.mark.slow
def test_every_run_folder_has_its_table_its_steps_and_its_picture(watched):
    from up2core.engine.results import read_table

    rows = read_table(watched / 'results.csv')
    assert [row['step'] for row in rows] == [2, 4]
    for task in TASKS:
        assert f'{task}/loss' in rows[0], sorted(rows[0])
    for key in ('classification/top1', 'retrieval/i2t_R@1', 'detection/bbox_mAP',
                'segmentation/segm_mAP', 'captioning/CIDEr', 'lr', 'time'):
        assert key in rows[1], key
    assert rows[0]['time'] < rows[1]['time']
    steps = [json.loads(line) for line in (watched / 'steps.jsonl').read_text().splitlines()]
    assert [s['step'] for s in steps] == [1, 2, 3, 4]
    assert all(f'{task}/loss' in s for s in steps for task in TASKS)  # shared steps: all five
    assert (watched / 'results.png').stat().st_size > 20_000
    # the same val images answered by every task at each validation
    drawn = {step: sorted(p.name for p in (watched / 'predictions' / step).glob('*.jpg'))
             for step in ('step_000002', 'step_000004')}
    assert len(drawn['step_000002']) == 4 and drawn['step_000002'] == drawn['step_000004']


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_reads_every_tasks_scalars_at_their_steps_and_serves_them(watched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(watched.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1, list(watched.rglob('*'))
    reader = EventAccumulator(str(events[0].parent))
    reader.Reload()
    tags = set(reader.Tags()['scalars'])
    for task in TASKS:
        assert [e.step for e in reader.Scalars(f'{task}/loss')] == [1, 2, 3, 4], task
    assert [e.step for e in reader.Scalars('classification/top1')] == [2, 4]
    assert [e.step for e in reader.Scalars('detection/bbox_mAP')] == [2, 4]
    assert 'lr' in tags
    pictures = reader.Tags()['images']
    assert len(pictures) == 4 and all(t.startswith('predictions/') for t in pictures)
    assert [e.step for e in reader.Images(pictures[0])] == [2, 4]
    final = json.loads((watched / 'metrics.json').read_text())
    assert reader.Scalars('classification/top1')[-1].value == pytest.approx(
        final['classification/top1'], rel=1e-6)

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name('tensorboard')), '--logdir', str(watched),
         '--port', str(port), '--host', '127.0.0.1', '--load_fast', 'false'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f'http://127.0.0.1:{port}/data/plugin/scalars'
        deadline, served = time.time() + 90, {}
        while time.time() < deadline:
            try:
                served = _get(f'{base}/tags')
                if served and any('captioning/CIDEr' in t for t in served.values()):
                    break
            except OSError:
                pass
            time.sleep(1)
        run = next(name for name, run_tags in served.items() if 'captioning/CIDEr' in run_tags)
        query = urllib.parse.urlencode({'run': run, 'tag': 'captioning/CIDEr'})
        points = _get(f'{base}/scalars?{query}')  # [wall time, step, value] each
        assert [p[1] for p in points] == [2, 4]
        assert points[-1][2] == pytest.approx(final['captioning/CIDEr'], rel=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_reads_back_the_runs_metrics_from_its_local_store(watched):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{watched.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name('up2')
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_name == 'work'
    history = client.get_metric_history(runs[0].info.run_id, 'segmentation/segm_mAP')
    assert [m.step for m in history] == [2, 4]
    losses = client.get_metric_history(runs[0].info.run_id, 'retrieval/loss')
    assert [m.step for m in losses] == [1, 2, 3, 4]
    # a name MLflow refuses ('@') is logged with '_' in its place
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id,
                                                      'retrieval/i2t_R_1')] == [2, 4]
    # the predictions drawn at each validation are the run's pictures, one per step
    pictures = client.list_artifacts(runs[0].info.run_id, 'predictions')
    assert len(pictures) == 4
    for picture in pictures:
        steps = [Path(a.path).name for a in client.list_artifacts(runs[0].info.run_id,
                                                                  picture.path)]
        assert steps == ['step_000002.png', 'step_000004.png'], picture.path
