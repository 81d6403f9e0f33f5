"""Anchoring a finetune to the weights it started from (decoupled L2-SP).

Plain weight decay pulls every weight towards zero; L2-SP (Li et al., "Explicit inductive bias
for transfer learning with convolutional networks", ICML 2018) pulls it towards the pre-trained
value instead, so a finetune learns the new data inside a neighbourhood of the model that knew
the old.  :class:`AnchorHook` applies the pull decoupled from the gradient, as AdamW decouples
its decay: after every optimizer step, each trained weight moves back by ``strength`` times the
learning rate's share of its distance from the start,

    theta <- theta - strength * (lr / base_lr) * (theta - theta_start)

so the pull follows the schedule (warm-up, cosine) and ``strength`` is the share of the distance
undone per step at the peak learning rate.  What a step learns then decays with a time constant
of about ``1 / strength`` steps unless the data keeps asking for it: the old tasks' weights drift
back while the new data's pull holds what it needs.  No extra forward pass; one copy of the
trained weights.  The start is the weights training starts from: a resumed run anchors to the
checkpoint it resumes.

Example:
    >>> custom_hooks = [dict(type='AnchorHook', strength=0.05)]   # or up2 train --anchor 0.05
"""

from __future__ import annotations

import torch
from mmengine.hooks import Hook

from up2core.registry import HOOKS


@HOOKS.register_module()
class AnchorHook(Hook):
    """Pull the trained weights back towards their values at the start of training.

    Args:
        strength: share of each weight's distance from its start undone after each step at the
            peak learning rate (0: off; 1: the weights never leave the start).
    """

    priority = 'HIGH'  # right after the step, before checkpoints and logging see the weights

    def __init__(self, strength: float) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f'AnchorHook: strength must lie in [0, 1], got {strength}')
        self.strength = float(strength)
        self._start: dict[str, torch.Tensor] = {}
        self._peak_lr: float | None = None

    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        self._start = {name: param.detach().clone() for name, param in model.named_parameters()
                       if param.requires_grad}
        self._peak_lr = _peak_lr(runner)

    @torch.no_grad()
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not self.strength or not self._start:
            return
        lrs = runner.optim_wrapper.get_lr().get('lr') or [self._peak_lr]
        share = self.strength * min(1.0, float(lrs[0]) / self._peak_lr) if self._peak_lr \
            else self.strength
        model = getattr(runner.model, 'module', runner.model)
        for name, param in model.named_parameters():
            start = self._start.get(name)
            if start is not None:
                param.lerp_(start, share)


def _peak_lr(runner) -> float | None:
    """The optimizer's configured learning rate (the schedule's peak)."""
    try:
        return float(runner.cfg.optim_wrapper.optimizer.lr)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
