"""What a finetune keeps of the checkpoint it started from: its other tasks, and a forgetting report.

A finetune on the user's data (``up2 train --data mine.yaml --load-from BASE``) trains a model of
the user's tasks only; MMEngine then saves what that model holds, so the own tensors of the
base's other tasks (a task's learned temperature, the caption vocabulary) are lost and the
result no longer loads as the generalist it was.  :class:`BaseCheckpointHook` carries them:

* every tensor of the loaded checkpoint that belongs to a task this model does not have
  (:attr:`~up2core.engine.checkpoint.LoadReport.other_tasks`) is written back into each
  checkpoint the run saves, unchanged (the run never trained it), so ``up2 test BASE_CONFIG
  FINETUNED.pth`` scores the old tasks and ``--data mine.yaml`` the new ones;
* the card (``meta['up2_card']``) gets ``base``: the base's data, names and val metrics, and the
  names of the tasks this model lacks, so the checkpoint lists what it knows from both;
* after each validation, a replayed task's metrics (``replay_<task>/<metric>``, on the base's own
  val data: ``--replay``) are set beside the base's (``<task>/<metric>`` of its card):
  ``metrics.json`` gains ``base/<task>/<metric>`` and ``kept/<task>/<metric>`` (the share kept),
  and ``up2 train`` prints them (:func:`forgetting_lines`).

Resuming a finetune carries what the resumed checkpoint carried.
"""

from __future__ import annotations

import math
import sys

import torch
from mmengine.hooks import Hook

from up2core.data.dataset_file import REPLAY_PREFIX
from up2core.registry import HOOKS

#: the card's record of the checkpoint a finetune started from
BASE_KEY = 'base'
#: where the hook leaves that record for :func:`~up2core.engine.data_card.make_card`
BASE_INFO = 'up2_card_base'


def forgetting(metrics: dict, base_metrics: dict) -> dict[str, tuple[float, float]]:
    """``{'<task>/<metric>': (before, after)}`` for every metric of a replayed task
    (``replay_<task>/<metric>`` in ``metrics``) the base's metrics hold, finite in both."""
    found = {}
    for key, after in metrics.items():
        if not key.startswith(REPLAY_PREFIX) or '/' not in key:
            continue
        name = key[len(REPLAY_PREFIX):]
        before = base_metrics.get(name)
        if isinstance(before, (int, float)) and isinstance(after, (int, float)) \
                and math.isfinite(before) and math.isfinite(after):
            found[name] = (float(before), float(after))
    return found


def forgetting_lines(metrics: dict) -> list[str]:
    """What ``up2 train`` prints of a finetune's forgetting: each old task's headline metrics
    before -> after and the share kept, from the ``base/`` and ``kept/`` keys of ``metrics``."""
    lines = []
    for key in sorted(k for k in metrics if k.startswith('kept/')):
        name = key[len('kept/'):]
        before, after = metrics.get(f'base/{name}'), metrics.get(f'{REPLAY_PREFIX}{name}')
        if before is None or after is None:
            continue
        lines.append(f'  {name:<32} {before:9.3f} -> {after:9.3f}  ({100 * metrics[key]:.1f} % '
                     f'kept)')
    return lines


@HOOKS.register_module()
class BaseCheckpointHook(Hook):
    """Carry a loaded checkpoint's other tasks into every checkpoint saved, and report what a
    finetune kept of the base's val metrics (see the module doc).  Does nothing in a run that
    loads no checkpoint."""

    priority = 'ABOVE_NORMAL'  # its metrics reach MetricsFileHook (LOW) and the card (LOWEST)

    def __init__(self) -> None:
        self.carried: dict[str, torch.Tensor] = {}
        self.base: dict | None = None

    def before_run(self, runner) -> None:
        path = runner.cfg.get('load_from')
        if not path:
            return
        from up2core.engine.checkpoint import load_report, verify_checkpoint
        from up2core.engine.data_card import read_card

        try:
            checkpoint = verify_checkpoint(path)
        except Exception:  # the Runner reports an unusable checkpoint itself
            return
        report = load_report(runner.model, checkpoint)
        state = checkpoint.get('state_dict', checkpoint)
        self.carried = {name: state[name].clone() for name in report.other_tasks}
        card = read_card(checkpoint) or {}
        resumed = bool(runner.cfg.get('resume'))
        if resumed or BASE_KEY in card:  # a resumed finetune, or a finetune of a finetune
            self.base = card.get(BASE_KEY)
        elif card:
            self.base = {k: card.get(k) for k in ('data', 'names', 'metrics', 'metrics_iter')}
            self.base['checkpoint'] = str(path)
        del checkpoint
        if self.base is not None:  # the card (make_card) lists it
            runner.message_hub.update_info(BASE_INFO, self.base)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics or not self.base or not self.base.get('metrics'):
            return
        for name, (before, after) in forgetting(metrics, self.base['metrics']).items():
            metrics[f'base/{name}'] = before
            if before:  # (a share of nothing is no number)
                metrics[f'kept/{name}'] = after / before

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict')
        if isinstance(state, dict):
            for name, value in self.carried.items():
                state.setdefault(name, value)


def print_forgetting(metrics: dict) -> None:
    """Print :func:`forgetting_lines` under a heading (nothing when there are none)."""
    lines = forgetting_lines(metrics)
    if lines:
        print('\nWhat the base knew, before -> after (its own val data, replayed tasks):',
              file=sys.stdout, flush=True)
        print('\n'.join(lines), flush=True)
