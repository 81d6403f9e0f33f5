"""Weight interpolation between a base checkpoint and one finetuned from it (WiSE-FT, PAINT).

A finetune moves every shared weight towards the new data and away from what the base knew.
Interpolating ``(1 - alpha) * base + alpha * finetuned`` keeps a chosen share of the move: on
models finetuned from a common start the straight line between the two stays in a low-loss
region for both (Wortsman et al., "Robust fine-tuning of zero-shot models", 2022; Ilharco et
al., "Patching open-vocabulary models by interpolating weights", 2022), so a value of ``alpha``
below 1 often gives back most of the old tasks for a little of the new one.  It costs nothing at
training or inference time: the result is one ordinary checkpoint of the same layout.

The merged checkpoint is a generalist: the tensors only the base holds (the own tensors of the
tasks the finetune dropped: their temperatures, the caption vocabulary) are added, those only the
finetune holds (the user's new tasks') are kept, and integer buffers (token ids) are the
finetune's.  ``up2 merge`` is the command.

Example:
    >>> merged = interpolate_states({'w': torch.zeros(2)}, {'w': torch.ones(2)}, alpha=0.25)
    >>> merged['w'].tolist()
    [0.25, 0.25]
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from up2core.errors import CheckpointError

#: the checkpoint meta key that records how a checkpoint was merged
MERGE_KEY = 'up2_merge'


def interpolate_states(base: dict, finetuned: dict, alpha: float) -> dict:
    """``(1 - alpha) * base + alpha * finetuned`` for every floating-point tensor both hold with
    the same shape; the finetune's value for every other tensor it holds (its new tasks' own,
    integer buffers); the base's for those only the base holds.

    Args:
        base: the state dict finetuning started from.
        finetuned: the finetuned state dict.
        alpha: 0 gives the base's weights, 1 the finetune's.

    Raises:
        ValueError: ``alpha`` outside [0, 1], or a tensor both hold with different shapes (the
            checkpoints are not one model).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must lie in [0, 1] (0: the base, 1: the finetune), got {alpha}')
    merged = dict(base)
    for name, value in finetuned.items():
        start = base.get(name)
        if not (torch.is_tensor(value) and torch.is_tensor(start)):
            merged[name] = value
            continue
        if start.shape != value.shape and value.is_floating_point():
            raise ValueError(f'{name}: shape {tuple(start.shape)} in the base, '
                             f'{tuple(value.shape)} in the finetune; interpolate checkpoints '
                             f'of one model, the second finetuned from the first')
        if not value.is_floating_point() or start.shape != value.shape:
            merged[name] = value  # ids and counts: the finetune's, never averaged
            continue
        mixed = torch.lerp(start.to(torch.float32), value.to(torch.float32), float(alpha))
        merged[name] = mixed.to(value.dtype)
    return merged


def merge_checkpoints(base: str | Path, finetuned: str | Path, alpha: float,
                      out: str | Path) -> dict:
    """Write the interpolation of two checkpoint files to ``out``; return its ``meta``.

    The meta is the finetune's, with :data:`MERGE_KEY` recording both files and ``alpha``; the
    metrics of the finetune's card are dropped (they are not the merged model's).

    Raises:
        CheckpointError: a file that cannot be read, or checkpoints of different models.
    """
    from up2core.engine.checkpoint import verify_checkpoint

    start = verify_checkpoint(base, check_finite=True)
    end = verify_checkpoint(finetuned, check_finite=True)
    try:
        state = interpolate_states(start.get('state_dict', start), end.get('state_dict', end),
                                   alpha)
    except ValueError as exc:
        raise CheckpointError(f'up2 merge {base} {finetuned}: {exc}') from None
    meta = dict(end.get('meta') or {})
    card = meta.get('up2_card')
    if isinstance(card, dict):
        meta['up2_card'] = {k: v for k, v in card.items() if k not in ('metrics', 'metrics_iter')}
    meta[MERGE_KEY] = {'base': str(base), 'finetuned': str(finetuned), 'alpha': float(alpha)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f'.{out.name}.partial')
    torch.save({'meta': meta, 'state_dict': state}, staged)
    os.replace(staged, out)  # a kill leaves no half-written checkpoint under the name
    return meta
