"""Hooks UP2 adds to MMEngine's."""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.hooks import Hook

from up2core.registry import HOOKS


def _plain(value):
    return value.item() if hasattr(value, 'item') else value


@HOOKS.register_module()
class MetricsFileHook(Hook):
    """Write the latest validation metrics to ``<work_dir>/metrics.json`` as flat JSON.

    Keys are ``task/metric``; ``iter`` says after which training iteration they were measured.
    Scripts (quality runs, benchmarks) read this file instead of parsing logs.
    """

    priority = 'LOW'

    def __init__(self, filename: str = 'metrics.json') -> None:
        self.filename = filename

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics or runner.rank != 0:
            return
        flat = {key: _plain(value) for key, value in metrics.items()}
        flat['iter'] = runner.iter
        path = Path(runner.work_dir) / self.filename
        path.write_text(json.dumps(flat, indent=2, sort_keys=True) + '\n')
