"""Runs that train without learning: candidates that collapse, losses that stay at chance.

A diverged run shows up as NaN (:mod:`up2core.engine.nonfinite`); a run whose learning rate is
too high for the likelihood can instead *collapse*: every candidate (category names, phrases,
captions) decodes to nearly the same vector, so ``P(x, y)`` is uniform, the loss sits at chance
level (``ln M`` for ``M`` candidates) and the evaluation scores nothing, while the log shows a
finite, flat loss.  :class:`LearningWatch` reads what the likelihood observed during each
training step (:meth:`UnifiedLikelihood.take_observations`: per likelihood group, the
unweighted loss, its chance level and the candidates' mean pairwise cosine) and says so once
per group and kind, with the iteration, the numbers and what to try; the findings also reach
``metrics.json`` (``learning/<group>/collapsed_at``, ``learning/<group>/at_chance_since``).

Configured by ``train_cfg`` of :class:`~up2core.engine.loops.UnmixedTrainLoop`:
``learning_watch=dict(window=50, collapse_cosine=0.95, chance_margin=0.03)`` (``None`` turns
it off).
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque

from mmengine.logging import MessageHub, print_log

WARNINGS_KEY = 'up2_learning_warnings'


class LearningWatch:
    """Watch each likelihood group for candidate collapse and chance-level loss (a window that
    is bad and not improving: its second half no better than its first).

    Args:
        window: observations of a group (its training steps) averaged before judging it; a
            group is judged only once it has a full window, so the first steps of a run (at
            chance by nature) never count.
        collapse_cosine: mean pairwise cosine of the candidates above which they collapsed.
        chance_margin: the loss is "at chance" when its window mean is within this fraction
            of the window's mean chance level (``ln M``).
        start: iterations before which nothing is judged (warm-up).
    """

    def __init__(self, window: int = 50, collapse_cosine: float = 0.95,
                 chance_margin: float = 0.03, start: int = 0) -> None:
        if window < 1:
            raise ValueError(f'learning_watch.window must be >= 1, got {window}')
        self.window, self.collapse_cosine = window, collapse_cosine
        self.chance_margin, self.start = chance_margin, start
        self._seen: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self.findings: dict[str, int] = {}  # 'learning/<group>/<kind>' -> iteration

    def observe(self, iteration: int, observations: list[dict]) -> list[str]:
        """Take one training step's observations; returns the messages logged now."""
        messages = []
        for obs in observations:
            seen = self._seen[obs['group']]
            seen.append(obs)
            if len(seen) < self.window or iteration < self.start:
                continue
            messages += self._judge(iteration, obs['group'], seen)
        return messages

    @staticmethod
    def _halves(values: list[float]) -> tuple[float, float, float]:
        """Mean of all values, of the first half and of the second half."""
        half = max(len(values) // 2, 1)
        early, late = values[:half], values[half:] or values[-1:]
        return (sum(values) / len(values), sum(early) / len(early), sum(late) / len(late))

    def _judge(self, iteration: int, group: str, seen: deque) -> list[str]:
        """A group is flagged when its window is bad AND not getting better: the second half
        of the window is no better than the first (a run that starts at chance and learns, as
        every run does, is never flagged on its way down)."""
        out = []
        cosines = [o['cosine'] for o in seen if o['cosine'] is not None]
        key = f'learning/{group}/collapsed_at'
        cosine = None
        if cosines:
            cosine, early, late = self._halves(cosines)
            if late < early - 0.005:  # the candidates are moving apart: not collapsed
                cosine = None
        if cosine is not None and cosine > self.collapse_cosine and key not in self.findings:
            self.findings[key] = iteration + 1
            out.append(
                f"likelihood group '{group}': its candidates collapsed by iteration "
                f"{iteration + 1} (mean pairwise cosine {cosine:.3f} over its last "
                f"{len(seen)} steps, above {self.collapse_cosine}): every candidate decodes "
                f"to nearly the same vector, so nothing can be told apart. Lower the learning "
                f"rate (optim_wrapper.optimizer.lr), lengthen the warm-up, or freeze more of "
                f"the text encoder.")
        loss, early, late = self._halves([o['loss'] for o in seen])
        chance = sum(o['chance'] for o in seen) / len(seen)
        key = f'learning/{group}/at_chance_since'
        improving = late < early * (1 - self.chance_margin)
        if chance > 0 and loss >= chance * (1 - self.chance_margin) and not improving \
                and key not in self.findings:
            self.findings[key] = iteration + 1 - len(seen)
            out.append(
                f"likelihood group '{group}': its loss has stayed at chance level for its last "
                f"{len(seen)} steps (mean {loss:.3f}, chance ln M = {chance:.3f}) at iteration "
                f"{iteration + 1}: it is not learning. Lower the learning rate, check that its "
                f"targets match its candidates, or raise its sampling weight.")
        for message in out:
            print_log(message, logger='current', level=logging.WARNING)
        if out:
            MessageHub.get_current_instance().update_info(WARNINGS_KEY, dict(self.findings))
        return out
