"""Experiment trackers by name (``up2 train ... --vis tensorboard mlflow wandb``).

Each name becomes one of MMEngine's vis backends beside the local one (which writes
``vis_data/scalars.json``), so every scalar the run logs (each task's losses every
``LoggerHook.interval`` steps, the learning rate, every validation metric at its step) goes to
the tracker too.  Offline unless the user says otherwise:

* ``tensorboard``: event files under ``<work_dir>/<timestamp>/vis_data`` (``tensorboard
  --logdir <work_dir>``);
* ``mlflow``: a local store, ``<work_dir>/mlflow.db`` (``mlflow ui --backend-store-uri
  sqlite:///<work_dir>/mlflow.db``; MLflow 3 retired its file store), or the server in
  ``MLFLOW_TRACKING_URI`` when that is set;
* ``wandb``: an offline run under the work dir (``wandb sync`` uploads it), or online when
  ``WANDB_MODE=online`` is set.

The pure-config equivalent, for MMEngine users::

    visualizer = dict(type='Visualizer', vis_backends=[
        dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])

The trackers are an extra (``pip install 'up2[track]'``), never the default install.

Examples:
    >>> vis_backends(['tensorboard'])[1]
    {'type': 'TensorboardVisBackend'}
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from pathlib import Path

from mmengine.visualization import MLflowVisBackend
from mmengine.visualization.vis_backend import force_init_env

from up2core.errors import UserError
from up2core.registry import VISBACKENDS

#: MLflow's store in the work dir (``mlflow ui --backend-store-uri sqlite:///<work_dir>/mlflow.db``)
MLFLOW_DB = 'mlflow.db'
#: ``--vis`` name -> (MMEngine vis backend, the package it imports)
TRACKERS = {'tensorboard': ('TensorboardVisBackend', 'tensorboard'),
            'mlflow': ('UP2MLflowVisBackend', 'mlflow'),
            'wandb': ('WandbVisBackend', 'wandb')}


_NOT_MLFLOW = re.compile(r'[^A-Za-z0-9_\-. :/]')


def mlflow_name(name: str) -> str:
    """``name`` as MLflow accepts it (letters, digits, ``_-. :/``): every other character
    becomes ``_`` (``retrieval/i2t_R@1`` -> ``retrieval/i2t_R_1``)."""
    return _NOT_MLFLOW.sub('_', name)


class _Without(logging.Filter):
    """Drops the records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@VISBACKENDS.register_module()
class UP2MLflowVisBackend(MLflowVisBackend):
    """MMEngine's MLflow backend with names MLflow accepts (:func:`mlflow_name`): UP2's
    metrics (``retrieval/i2t_R@1``) and config keys have characters MLflow refuses, which
    would stop the run at its first log."""

    def _init_env(self) -> None:
        """MMEngine's set-up, quiet on a local store: its 'make sure that the mlflow server is
        running' and MLflow's database-creation lines are for servers, not for the file UP2
        writes in the work dir (a user's ``MLFLOW_TRACKING_URI`` keeps them).

        MLflow's ``set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` to the process's
        environment; it is put back as it was, or a later run in the same process (or a
        subprocess it starts) would take this run's store for a user's server."""
        if not str(self._tracking_uri or '').startswith('sqlite:'):
            return super()._init_env()
        before = os.environ.get('MLFLOW_TRACKING_URI')
        try:
            self._init_local_env()
        finally:
            if before is None:
                os.environ.pop('MLFLOW_TRACKING_URI', None)
            else:
                os.environ['MLFLOW_TRACKING_URI'] = before

    def _init_local_env(self) -> None:
        from mmengine.logging import MMLogger

        logger = MMLogger.get_current_instance()
        server_only = _Without('mlflow server is running')
        database = logging.getLogger('mlflow.store.db.utils')
        level = database.level
        logger.addFilter(server_only)
        database.setLevel(logging.WARNING)
        try:
            super()._init_env()
        finally:
            logger.removeFilter(server_only)
            database.setLevel(level)

    @force_init_env
    def add_config(self, config, **kwargs) -> None:
        self.cfg = config
        params = self._flatten(config.to_dict())
        self._mlflow.log_params({mlflow_name(k): str(v)[:6000] for k, v in params.items()})
        self._mlflow.log_text(config.pretty_text, 'config.py')

    def add_scalar(self, name, value, step=0, **kwargs) -> None:
        super().add_scalar(mlflow_name(name), value, step, **kwargs)

    def add_scalars(self, scalar_dict, step=0, file_path=None, **kwargs) -> None:
        super().add_scalars({mlflow_name(k): v for k, v in scalar_dict.items()}, step,
                            file_path, **kwargs)

    @force_init_env
    def add_image(self, name, image, step=0, **kwargs) -> None:
        """Save ``image`` as the run's artifact ``<name>/step_<step>.png``: MMEngine's backend
        passes the bare name, which MLflow cannot save (no file type) and which would keep only
        the last step's picture."""
        self._mlflow.log_image(image, f'{mlflow_name(name)}/step_{step:06d}.png')


def vis_backends(names: list[str], work_dir: str | None = None,
                 run_name: str | None = None) -> list[dict]:
    """The ``visualizer.vis_backends`` for trackers ``names``: the local backend first, then
    one per tracker, configured offline (see the module's docstring).

    Raises:
        UserError: an unknown tracker, or one whose package is not installed.
    """
    backends = [dict(type='LocalVisBackend')]
    for name in dict.fromkeys(names):
        if name not in TRACKERS:
            raise UserError(f"--vis {name}: not a tracker UP2 knows; give "
                            f"{', '.join(TRACKERS)} (several allowed)")
        backend, package = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"--vis {name} needs the {package} package, not installed here: "
                            f"pip install 'up2[track]' (or pip install {package})")
        entry: dict = dict(type=backend)
        if name == 'mlflow':
            entry.update(exp_name='up2', run_name=run_name)
            if os.environ.get('MLFLOW_TRACKING_URI'):  # the user's server
                entry['tracking_uri'] = os.environ['MLFLOW_TRACKING_URI']
            elif work_dir:  # MLflow's local store: a SQLite file (its file store is retired)
                where = Path(work_dir).resolve()
                entry.update(tracking_uri=f'sqlite:///{where / MLFLOW_DB}',
                             artifact_location=str(where / 'mlflow_artifacts'))
        elif name == 'wandb':
            init = dict(project='up2', name=run_name,
                        mode=os.environ.get('WANDB_MODE', 'offline'))
            if work_dir:
                init['dir'] = str(work_dir)
            entry['init_kwargs'] = init
        backends.append({k: v for k, v in entry.items() if v is not None})
    return backends


def apply_trackers(cfg, names: list[str]) -> None:
    """Point ``cfg``'s visualizer at trackers ``names`` (its other settings kept)."""
    work_dir = cfg.get('work_dir')
    run_name = Path(str(work_dir)).name if work_dir else None
    visualizer = dict(cfg.get('visualizer') or dict(type='Visualizer'))
    backends = [dict(b) for b in visualizer.get('vis_backends') or []]
    for backend in vis_backends(names, work_dir, run_name):
        if not any(str(b.get('type')).split('.')[-1] == backend['type'] for b in backends):
            backends.append(backend)  # (one the config has already stays as it is)
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer
