"""--vis: experiment trackers as MMEngine vis backends, offline unless the user says so."""

from __future__ import annotations

import importlib.util
import os

import pytest
from mmengine.config import Config

from up2core.engine import tracking
from up2core.engine.tracking import apply_trackers, vis_backends
from up2core.errors import UserError


@pytest.fixture
def installed(monkeypatch):
    """Every tracker's package found (what is imported is MMEngine's business)."""
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: object())


def test_each_tracker_is_a_backend_beside_the_local_one_and_offline(installed, monkeypatch,
                                                                    tmp_path):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.delenv('WANDB_MODE', raising=False)
    backends = vis_backends(['tensorboard', 'mlflow', 'wandb', 'tensorboard'],
                            str(tmp_path), 'run1')
    assert [b['type'] for b in backends] == ['LocalVisBackend', 'TensorboardVisBackend',
                                             'UP2MLflowVisBackend', 'WandbVisBackend']
    assert backends[2]['tracking_uri'] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert backends[3]['init_kwargs'] == dict(project='up2', name='run1', mode='offline',
                                              dir=str(tmp_path))
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'http://127.0.0.1:5000')
    monkeypatch.setenv('WANDB_MODE', 'online')
    backends = vis_backends(['mlflow', 'wandb'])
    assert backends[1]['tracking_uri'] == 'http://127.0.0.1:5000'
    assert backends[2]['init_kwargs']['mode'] == 'online'


def test_the_configs_own_backends_stay(installed):
    cfg = Config(dict(work_dir='work_dirs/x', visualizer=dict(
        type='Visualizer', name='v', vis_backends=[dict(type='LocalVisBackend'),
                                                   dict(type='TensorboardVisBackend')])))
    apply_trackers(cfg, ['tensorboard', 'mlflow'])
    assert [b['type'] for b in cfg.visualizer.vis_backends] == [
        'LocalVisBackend', 'TensorboardVisBackend', 'UP2MLflowVisBackend']
    assert cfg.visualizer.name == 'v' and cfg.visualizer.vis_backends[2].run_name == 'x'


def test_an_unknown_or_missing_tracker_says_what_to_do(monkeypatch):
    with pytest.raises(UserError, match='--vis tensorbord: not a tracker UP2 knows; give '
                                        'tensorboard, mlflow, wandb'):
        vis_backends(['tensorbord'])
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(UserError, match=r"--vis wandb needs the wandb package, not installed "
                                        r"here: pip install 'up2\[track\]'"):
        vis_backends(['wandb'])
    assert set(tracking.TRACKERS) == {'tensorboard', 'mlflow', 'wandb'}


def test_names_mlflow_refuses_get_an_underscore():
    from up2core.engine.tracking import mlflow_name

    assert mlflow_name('retrieval/i2t_R@1') == 'retrieval/i2t_R_1'
    assert mlflow_name('targets.detection/bbox_mAP') == 'targets.detection/bbox_mAP'


def test_mlflow_keeps_a_picture_per_step_under_the_tag(tmp_path, capfd, monkeypatch):
    pytest.importorskip('mlflow')
    import numpy as np
    from mlflow.tracking import MlflowClient

    from up2core.engine.tracking import UP2MLflowVisBackend

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    backend = UP2MLflowVisBackend(str(tmp_path), exp_name='up2', run_name='pictures',
                                  tracking_uri=uri, artifact_location=str(tmp_path / 'art'))
    backend.add_config(Config(dict(work_dir=str(tmp_path))))  # (as the runner does first)
    printed = capfd.readouterr()
    # a local store is no server to make sure of, and creating its tables is no news
    assert 'mlflow server' not in printed.out + printed.err
    assert 'Creating initial MLflow database' not in printed.out + printed.err
    # MLflow exports its tracking URI to the environment: a later run in this process (or
    # one it starts) would take this store for a user's server
    assert 'MLFLOW_TRACKING_URI' not in os.environ
    image = np.zeros((8, 12, 3), np.uint8)
    backend.add_image('predictions/00_a@b', image, step=2)
    backend.add_image('predictions/00_a@b', image, step=4)
    backend.close()
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name('up2').experiment_id])
    saved = client.list_artifacts(run.info.run_id, 'predictions/00_a_b')
    assert [a.path.rsplit('/', 1)[1] for a in saved] == ['step_000002.png', 'step_000004.png']
