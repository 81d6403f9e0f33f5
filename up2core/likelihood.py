"""The unified maximum-likelihood formulation shared by every task.

For an input representation ``x`` and candidate representations ``y_1..y_M`` (both outputs of the
shared decoder), Uni-Perceiver v2 models

    P(x, y) ∝ exp(cos(x, y) / tau)

with a learned temperature ``tau`` (one per *task group*: tasks whose candidates are alike share
one), trains with the cross-entropy over the candidate set, and predicts ``argmax_y P(x, y)``.
As in the public Uni-Perceiver code, the learned quantity is ``log(1/tau)`` and the scale
``1/tau`` is clamped at 100, so the logits stay bounded.

Examples:
    >>> lik = UnifiedLikelihood(groups=('classification',))
    >>> x, y = torch.randn(4, 16), torch.randn(10, 16)
    >>> loss = lik.loss(x, y, torch.tensor([0, 3, 9, 2]), group='classification')
    >>> scores, labels = lik.predict(x, y, group='classification', topk=5)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from up2core.registry import MODELS


@MODELS.register_module()
class UnifiedLikelihood(nn.Module):
    """Cosine-similarity logits with a learned, clamped scale per task group.

    Args:
        groups: names of the task groups that get a scale each; an unknown group name is an
            error (a typo would otherwise silently share a scale).
        init_temperature: initial ``tau`` (CLIP's 0.07).
        max_scale: upper clamp of ``1/tau``.
    """

    def __init__(self, groups: tuple[str, ...] | list[str] = ('default',),
                 init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.ParameterDict({
            g: nn.Parameter(torch.tensor(math.log(1 / init_temperature))) for g in groups})

    def scale(self, group: str) -> Tensor:
        """``1/tau`` of ``group``, clamped."""
        if group not in self.log_scale:
            raise KeyError(f"unknown likelihood group '{group}'; groups are "
                           f"{list(self.log_scale)} (set `groups` in the likelihood config)")
        return self.log_scale[group].exp().clamp(max=self.max_scale)

    def logits(self, x: Tensor, y: Tensor, group: str = 'default') -> Tensor:
        """[N, C] x [M, C] -> [N, M] scaled cosine similarities (log P up to a constant)."""
        return self.scale(group) * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).t()

    def loss(self, x: Tensor, y: Tensor, targets: Tensor, group: str = 'default',
             weight: float = 1.0, label_smoothing: float = 0.0) -> Tensor:
        """``weight * CE(logits(x, y), targets)``: minus the mean log-likelihood of the targets."""
        return weight * F.cross_entropy(self.logits(x, y, group), targets,
                                        label_smoothing=label_smoothing)

    @torch.no_grad()
    def predict(self, x: Tensor, y: Tensor, group: str = 'default', topk: int = 1
                ) -> tuple[Tensor, Tensor]:
        """Top-k candidates per input: (probabilities [N, k], indices [N, k])."""
        probs = self.logits(x, y, group).softmax(dim=-1)
        return probs.topk(min(topk, probs.shape[-1]), dim=-1)
