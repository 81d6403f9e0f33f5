"""Non-finite losses and gradients: skip the step, count it per task, stop a diverged run.

A step whose loss or gradients hold NaN or infinity would write NaN into every parameter it
touches; a few such steps and the run trains on, exits 0 and saves NaN checkpoints that evaluate
to nonsense.  :class:`NonFiniteGuard` sits between the training loop and the optim wrapper: it
lets the backward pass run (under DDP every rank must take part in the gradient all-reduce),
then refuses the optimiser step if the loss or any gradient is non-finite, logs the iteration
and task, and raises :class:`~up2core.errors.NonFiniteTrainingError` once more than
``max_steps`` steps were skipped.

With mixed precision (``AmpOptimWrapper``) infinite *scaled* gradients are routine (the loss
scaler skips those steps and lowers its scale); there only the loss is checked.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub, print_log

from up2core.errors import NonFiniteTrainingError


def _finite(tensors: list[torch.Tensor]) -> bool:
    if not tensors:
        return True
    norms = torch._foreach_norm(tensors)  # one pass over the gradients, as clip_grad does
    return bool(torch.isfinite(torch.stack(norms)).all())


class NonFiniteGuard:
    """Skip optimiser steps with non-finite loss or gradients; stop after ``max_steps`` skips.

    Args:
        max_steps: how many skipped steps a run tolerates (in total); one more stops it.
        where: returns ``(iteration, task)`` of the step being taken, for the messages.

    Examples:
        >>> guard = NonFiniteGuard(max_steps=10, where=lambda: (loop.iter, loop.current_task))
        >>> guard.install(runner.optim_wrapper)  # doctest: +SKIP
    """

    def __init__(self, max_steps: int, where: Callable[[], tuple[int, str]]) -> None:
        if max_steps < 0:
            raise ValueError(f'max_nonfinite_steps must be >= 0, got {max_steps}')
        self.max_steps = max_steps
        self.where = where
        self.skipped: Counter[str] = Counter()
        self._loss_finite = True

    def install(self, wrapper) -> None:
        """Wrap ``wrapper.backward`` and ``wrapper.step`` (this instance only; idempotent)."""
        if getattr(wrapper, '_up2_nonfinite_guard', None) is not None:
            wrapper._up2_nonfinite_guard = self
            return
        backward, step = wrapper.backward, wrapper.step
        check_gradients = not hasattr(wrapper, 'loss_scaler')  # AMP handles its own infs

        @functools.wraps(backward)
        def guarded_backward(loss, **kwargs):
            wrapper._up2_nonfinite_guard._loss_finite &= bool(torch.isfinite(loss).all())
            return backward(loss, **kwargs)

        @functools.wraps(step)  # keeps the marks MMEngine's schedulers put on step()
        def guarded_step(**kwargs):
            guard = wrapper._up2_nonfinite_guard
            finite, guard._loss_finite = guard._loss_finite, True
            reason = 'loss'
            if finite and check_gradients:
                grads = [p.grad for group in wrapper.optimizer.param_groups
                         for p in group['params'] if p.grad is not None]
                finite, reason = _finite(grads), 'gradient'
            if get_world_size() > 1:  # every rank skips, or none does
                flag = torch.tensor([0.0 if finite else 1.0])
                all_reduce(flag)
                finite = bool(flag.item() == 0)
            if finite:
                return step(**kwargs)
            guard.record(reason)
            return None

        wrapper._up2_nonfinite_guard = self
        wrapper.backward, wrapper.step = guarded_backward, guarded_step

    def record(self, reason: str) -> None:
        iteration, task = self.where()
        self.skipped[task] += 1
        total = sum(self.skipped.values())
        MessageHub.get_current_instance().update_scalar('train/nonfinite_steps', total)
        print_log(f'iteration {iteration + 1} (task {task}): non-finite {reason}; the step was '
                  f'skipped ({total} skipped so far, at most {self.max_steps} allowed)',
                  logger='current', level=logging.WARNING)
        if total > self.max_steps:
            counts = ', '.join(f'{name}: {n}' for name, n in self.skipped.most_common())
            raise NonFiniteTrainingError(
                f'training diverged: {total} steps had a non-finite loss or gradient ({counts}); '
                f'the last at iteration {iteration + 1}. Their updates were skipped, so the '
                f'weights and checkpoints stay finite. Lower the learning rate '
                f'(optim_wrapper.optimizer.lr), clip gradients (optim_wrapper.clip_grad), check '
                f'the data of the task named most, or allow more skips with '
                f'train_cfg.max_nonfinite_steps.')
