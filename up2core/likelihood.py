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

    Candidates may differ per sample (the regions of each image, for grounding), with a mask of
    the real ones, and a query may have several positives:

    >>> regions, valid = torch.randn(2, 7, 16), torch.ones(2, 7, dtype=torch.bool)
    >>> phrases = torch.randn(2, 3, 16)                       # 3 phrases per image
    >>> positives = torch.zeros(2, 3, 7, dtype=torch.bool); positives[..., 0] = True
    >>> loss = lik.loss(phrases, regions, positives, group='classification', valid=valid)
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
        # one-element vectors rather than 0-d scalars: FSDP2 shards no 0-d parameter
        self.log_scale = nn.ParameterDict({
            g: nn.Parameter(torch.tensor([math.log(1 / init_temperature)])) for g in groups})
        self._observations: list[dict] = []

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints written before the scales were 1-element vectors hold 0-d tensors
        for key in [k for k in state_dict if k.startswith(prefix + 'log_scale.')]:
            if state_dict[key].dim() == 0:
                state_dict[key] = state_dict[key].reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def scale(self, group: str) -> Tensor:
        """``1/tau`` of ``group``, clamped."""
        if group not in self.log_scale:
            raise KeyError(f"unknown likelihood group '{group}'; groups are "
                           f"{list(self.log_scale)} (set `groups` in the likelihood config)")
        # a 0-d tensor, as before the stored scales became 1-element vectors (plugins use it)
        return self.log_scale[group].exp().clamp(max=self.max_scale).squeeze(0)

    def logits(self, x: Tensor, y: Tensor, group: str = 'default',
               valid: Tensor | None = None) -> Tensor:
        """Scaled cosine similarities (log P up to a constant) of inputs and candidates.

        * shared candidates: ``x`` [N, C] (or [..., C]) and ``y`` [M, C] -> [N, M];
        * candidates per sample: ``y`` [B, K, C] with ``x`` [B, C] -> [B, K], or ``x``
          [B, Q, C] (several queries per sample) -> [B, Q, K].  ``valid`` [B, K] (bool) marks
          the real candidates of each sample (samples have different numbers); the others get
          the lowest finite logit, so they take no probability.
        """
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        if y.dim() == 2:
            if valid is not None:
                raise ValueError('valid masks candidates per sample; shared candidates '
                                 '(y of shape [M, C]) need none')
            sims = x @ y.t()
        elif y.dim() == 3:
            if x.dim() not in (2, 3) or x.shape[0] != y.shape[0]:
                raise ValueError(f'candidates per sample (y {tuple(y.shape)}) need x of shape '
                                 f'[B, C] or [B, Q, C] with the same B, got {tuple(x.shape)}')
            sims = torch.einsum('bc,bkc->bk' if x.dim() == 2 else 'bqc,bkc->bqk', x, y)
        else:
            raise ValueError(f'y must be [M, C] or [B, K, C], got {tuple(y.shape)}')
        logits = self.scale(group) * sims
        if valid is not None:
            if valid.shape != (y.shape[0], y.shape[1]):
                raise ValueError(f'valid must be [B, K] = {tuple(y.shape[:2])}, got '
                                 f'{tuple(valid.shape)}')
            mask = valid.bool() if x.dim() == 2 else valid.bool()[:, None]
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        return logits

    def loss(self, x: Tensor, y: Tensor, targets: Tensor, group: str = 'default',
             weight: float = 1.0, label_smoothing: float = 0.0, valid: Tensor | None = None,
             multi_positive: str = 'any') -> Tensor:
        """``weight`` x minus the mean log-likelihood of the targets.

        Args:
            x, y, group, valid: as in :meth:`logits`.
            targets: either the index of each query's one positive candidate (long, the shape
                of the logits without the last dim; ``-100`` ignores a query), or a bool mask of
                positives of the logits' shape (several positives per query allowed; a query
                without any is ignored).
            label_smoothing: for index targets, as in ``F.cross_entropy``.
            multi_positive: with a mask, ``'any'`` maximises the probability that the answer
                is one of the positives (``-log sum_pos P``: any of several matching regions
                is right), ``'all'`` the mean log-probability of every positive (a uniform
                target over them: multi-label classification).

        Returns:
            A scalar; zero (still in the graph) when no query has a positive.
        """
        logits = self.logits(x, y, group, valid)
        flat = logits.reshape(-1, logits.shape[-1])
        loss = self._loss(flat, logits, targets, valid, label_smoothing, multi_positive)
        if self.training:
            self._observe(group, loss, y, valid, targets)
        return weight * loss

    def _loss(self, flat: Tensor, logits: Tensor, targets: Tensor, valid: Tensor | None,
              label_smoothing: float, multi_positive: str) -> Tensor:
        if targets.dtype == torch.bool:
            if targets.shape != logits.shape:
                raise ValueError(f'a mask of positives must have the logits\' shape '
                                 f'{tuple(logits.shape)}, got {tuple(targets.shape)}')
            positives = targets.reshape(flat.shape)
            if valid is not None:
                mask = valid.bool() if logits.dim() == 2 else valid.bool()[:, None]
                positives = (targets & mask.expand_as(targets)).reshape(flat.shape)
            used = positives.any(-1)
            if not used.any():
                return flat.mul(0.0).sum()  # (the sum of masked logits would overflow)
            flat, positives = flat[used], positives[used]
            log_probs = flat.log_softmax(-1)
            low = torch.finfo(flat.dtype).min
            if multi_positive == 'any':
                per_query = -log_probs.masked_fill(~positives, low).logsumexp(-1)
            elif multi_positive == 'all':
                per_query = -(log_probs * positives).sum(-1) / positives.sum(-1)
            else:
                raise ValueError(f"multi_positive must be 'any' or 'all', got {multi_positive!r}")
            return per_query.mean()
        targets = targets.reshape(-1).long()
        if not (targets != -100).any():
            return flat.mul(0.0).sum()
        return F.cross_entropy(flat, targets, label_smoothing=label_smoothing, ignore_index=-100)

    @torch.no_grad()
    def _observe(self, group: str, loss: Tensor, y: Tensor, valid: Tensor | None,
                 targets: Tensor) -> None:
        """Record the step's unweighted loss, its chance level and the candidates' mean
        pairwise cosine (for :class:`~up2core.engine.learning.LearningWatch`)."""
        y = F.normalize(y.detach().float(), dim=-1)
        if y.dim() == 2:
            y = y[None]
        mask = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device) if valid is None \
            else valid.bool()
        count = mask.sum(-1).float()                                   # M per sample
        summed = (y * mask[..., None]).sum(1)                          # sum of unit vectors
        pairs = count * (count - 1)
        cosine = ((summed.pow(2).sum(-1) - count) / pairs.clamp(min=1))[pairs > 0]
        chance = count.clamp(min=1).log().mean()
        if targets.dtype == torch.bool:  # any of P positives: chance is ln(M / P)
            positives = targets.float().sum(-1)
            used = positives > 0
            if used.any():
                chance = (count.mean() / positives[used]).log().mean()
        self._observations.append(dict(
            group=group, loss=float(loss.detach()), chance=float(chance),
            cosine=float(cosine.mean()) if len(cosine) else None))
        del self._observations[:-1024]  # nobody takes them (a loop of one's own): stay small

    def take_observations(self) -> list[dict]:
        """What :meth:`loss` observed in training since the last call (and forget it)."""
        taken, self._observations = self._observations, []
        return taken

    @torch.no_grad()
    def predict(self, x: Tensor, y: Tensor, group: str = 'default', topk: int = 1,
                valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Top-k candidates per query: (probabilities [..., k], indices [..., k])."""
        probs = self.logits(x, y, group, valid).softmax(dim=-1)
        return probs.topk(min(topk, probs.shape[-1]), dim=-1)
