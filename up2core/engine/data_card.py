"""A checkpoint's record of what its model knows: the data, the names per task, the val metrics.

A model that decodes names answers any image with *some* name; whoever loads a checkpoint should
see what it was trained on before trusting the answer (an astronaut photo given to a model that
knows only Shapes gets "circle").  :class:`DataCardHook` writes the card into the ``meta`` of
every checkpoint (``meta['up2_card']``), and after a validation into the checkpoint of that
iteration too; ``up2 infer`` and the demo page show it (:func:`card_lines`).

A card::

    {'data': {'name': 'my-parts', 'file': '/data/mine/data.yaml', ...},
     'names': {'detection': {'classes': ['coin', 'tile']}, ...},
     'metrics': {'detection/bbox_mAP': 0.85, ...}, 'metrics_iter': 260}

A finetune adds ``base`` (its checkpoint's card) and, when it replayed the base's data,
``replay`` (:func:`replay_record`: the weight, the share of steps, each replayed task's data).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook

from up2core.registry import HOOKS

CARD_KEY = 'up2_card'


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, 'item') else value


def config_data(cfg) -> dict:
    """The data of a config without a dataset file: its data roots and annotation files."""
    described: dict = {}
    for task, loader in (cfg.get('train_dataloader') or {}).items():
        dataset = loader.get('dataset', {}) if isinstance(loader, dict) else {}
        described[task] = {k: str(dataset[k]) for k in ('data_root', 'ann_file')
                           if dataset.get(k)}
    roots = {Path(d['data_root']).name for d in described.values() if d.get('data_root')}
    name = roots.pop() if len(roots) == 1 else Path(str(cfg.filename or 'config')).stem
    return {'name': name, 'config': str(cfg.filename), 'tasks': described}


def replay_record(cfg) -> dict | None:
    """What a finetune replayed (``--replay``, :func:`~up2core.data.dataset_file.replay_tasks`):
    its weight and share of the steps, the kind of step, and each replayed task's data (root
    and annotation file); None for a run that replays nothing."""
    groups = (cfg.get('train_cfg') or {}).get('groups') or {}
    group = groups.get('replay') if isinstance(groups, dict) else None
    if not isinstance(group, dict) or not group.get('tasks'):
        return None
    weight = float(group.get('weight', 1.0))
    total = sum(float(g.get('weight', 1.0)) for g in groups.values() if isinstance(g, dict))
    data = config_data(cfg)['tasks']
    return {'weight': weight, 'share_of_steps': round(weight / total, 4) if total else None,
            'mode': group.get('mode', 'unmixed'),
            'tasks': {task: data.get(task, {}) for task in group['tasks']}}


def make_card(runner, metrics: dict | None = None) -> dict:
    """The card of ``runner``'s model and data (and ``metrics`` when given)."""
    model = getattr(runner.model, 'module', runner.model)
    cfg = runner.cfg
    card = {'data': dict(cfg.get('up2_data') or config_data(cfg)),
            'names': {name: task.data_names() for name, task in
                      getattr(model, 'tasks', {}).items()}}
    base = runner.message_hub.get_info('up2_card_base')  # a finetune's (BaseCheckpointHook)
    if base:
        card['base'] = base
        for task, known in (base.get('names') or {}).items():  # what it still knows of them
            card['names'].setdefault(task, known)
    replay = replay_record(cfg)
    if replay:
        card['replay'] = replay
    if metrics:
        card['metrics'] = {k: _plain(v) for k, v in metrics.items()}
        card['metrics_iter'] = runner.iter
    # plain types only (ConfigDicts are not on the allow-list of weights_only loading)
    return json.loads(json.dumps(card, default=str))


def read_card(checkpoint: dict) -> dict | None:
    """The card of a loaded checkpoint, or None (checkpoints written before cards)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    card = meta.get(CARD_KEY) if isinstance(meta, dict) else None
    return card if isinstance(card, dict) else None


def card_lines(card: dict | None) -> list[str]:
    """What a user is shown of a card: the data, the names per task, the val metrics."""
    if not card:
        return ['This checkpoint does not record what it was trained on (written before UP2 '
                'kept a data card).']
    data = card.get('data') or {}
    lines = [f"Trained on '{data.get('name', '?')}'"
             + (f" ({data['file']})" if data.get('file') else '')]
    by_names: dict[tuple, list[str]] = {}  # tasks with the same names share a line
    for task, names in (card.get('names') or {}).items():
        classes = names.get('classes') if isinstance(names, dict) else None
        if classes:
            by_names.setdefault(tuple(classes), []).append(task)
    for classes, tasks in by_names.items():
        shown = ', '.join(classes[:8]) + (f', ... ({len(classes)} in all)'
                                           if len(classes) > 8 else '')
        lines.append(f"{', '.join(tasks)} know{'s' if len(tasks) == 1 else ''}: {shown}")
    metrics = card.get('metrics') or {}
    if metrics:
        # each task's headline number (a metric's first key); the card keeps them all
        headline: dict[str, str] = {}
        for key, value in metrics.items():
            task = key.partition('/')[0]
            if '/' in key and task not in headline and isinstance(value, (int, float)):
                headline[task] = f'{key} {value:.3g}'
        shown = ', '.join(headline.values())
        lines.append(f"val after {card.get('metrics_iter', '?')} iterations: {shown}")
    return lines


@HOOKS.register_module()
class DataCardHook(Hook):
    """Write the model's card (:func:`make_card`) into every checkpoint's meta; after each
    validation, also into the checkpoint saved at that iteration (MMEngine saves a checkpoint
    before it validates the same iteration), so the last checkpoint holds its val metrics."""

    priority = 'LOWEST'  # after the checkpoint hook, which saves in after_train_iter

    def __init__(self) -> None:
        self._metrics: dict | None = None
        self._saved: dict[int, str] = {}
        self._last: str | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[CARD_KEY] = make_card(runner, self._metrics)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        last = runner.message_hub.get_info('last_ckpt')
        if last and str(last) != self._last:  # saved at this iteration
            self._last = str(last)
            self._saved[runner.iter + 1] = self._last  # the loop counts it after the hooks

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics:
            return
        self._metrics = {k: _plain(v) for k, v in metrics.items()}
        path = self._saved.get(runner.iter)
        if runner.rank != 0 or path is None or not Path(path).is_file():
            return
        from up2core.engine.checkpoint import allow_mmengine_checkpoints

        allow_mmengine_checkpoints()
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        checkpoint.setdefault('meta', {})[CARD_KEY] = make_card(runner, self._metrics)
        staged = Path(path).with_name(f'.{Path(path).name}.card')
        torch.save(checkpoint, staged)
        os.replace(staged, path)  # atomic: a kill leaves the old checkpoint, never half a file
