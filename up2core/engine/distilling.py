"""Distilling a finetune from the model it started from (``up2 train --distill W``).

:class:`DistillationHook` copies the model when training starts (after ``--load-from`` put the
base's weights in it), freezes the copy, and gives it to the model as its teacher
(:class:`~up2core.models.distillation.DecoderDistillation`): every task's training loss then
has a ``loss_distill`` term, ``W`` times how far the shared decoder's outputs on the batch moved
from the teacher's.  Unlike a replayed task it needs none of the base's data: the new images
(and replayed ones, with ``--replay``) are the reference, as the base's outputs on them are what
the old tasks read.  Its cost is one forward pass of the teacher, no gradient, per step it
distils (``every``: one in K; ``up2 train`` distils on one step in 2 unless told).

As :class:`~up2core.engine.anchoring.AnchorHook`'s start, the teacher is the model as training
starts: a resumed run distils from the checkpoint it resumes.

Example:
    >>> custom_hooks = [dict(type='DistillationHook', weight=1.0)]   # or up2 train --distill 1
"""

from __future__ import annotations

from mmengine.hooks import Hook

from up2core.models.distillation import DecoderDistillation, frozen_copy
from up2core.registry import HOOKS


@HOOKS.register_module()
class DistillationHook(Hook):
    """Give the model a frozen copy of itself, as it starts training, to distil from.

    Args:
        weight: of each task's ``loss_distill`` term (``1 - cos`` of the decoder's outputs,
            between 0 and 2; 0 is not allowed: leave the hook out).
        tasks: shell patterns of the tasks that distil (``['replay_*']``: only the base's
            replayed tasks); ``None``: every task.  The teacher runs on their batches only.
        image: also keep the image encoder's maps where they were (the neck's and the
            proposal network's encoder's; ``DecoderDistillation``'s ``image``).
        every: distil on every ``every``-th training step only (the first, then one in
            ``every``): the teacher's forward pass, the method's cost, runs that much less.
    """

    priority = 'LOW'  # after the hooks that change the weights before training starts

    def __init__(self, weight: float = 1.0, tasks: list[str] | None = None,
                 image: bool = False, every: int = 1) -> None:
        if not 0 < weight < float('inf'):
            raise ValueError(f'DistillationHook: weight must be > 0, got {weight}')
        if tasks is not None and (isinstance(tasks, str) or not tasks):
            raise ValueError(f'DistillationHook: tasks must be a list of task-name patterns '
                             f'(or None: every task), got {tasks!r}')
        self.weight = float(weight)
        self.tasks = None if tasks is None else list(tasks)
        self.image = bool(image)
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f'DistillationHook: every must be an integer >= 1, got {every!r}')
        self.every = every

    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        if not hasattr(model, 'recorded_forward'):
            raise TypeError(f'DistillationHook needs an UP2 model (one with recorded_forward), '
                            f'not {type(model).__name__}')
        if self.tasks is not None and hasattr(model, 'tasks'):
            distillation = DecoderDistillation(model, self.weight, self.tasks)
            if not any(distillation.covers(name) for name in model.tasks):
                raise ValueError(f'DistillationHook: tasks {self.tasks} match none of the '
                                 f"model's tasks {list(model.tasks)}")
        model.distillation = None  # (never a teacher inside the teacher)
        model.distillation = DecoderDistillation(frozen_copy(model), self.weight, self.tasks,
                                                 self.image)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = getattr(runner.model, 'module', runner.model)
        if getattr(model, 'distillation', None) is not None:
            model.distillation.active = runner.iter % self.every == 0

    def after_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        model.distillation = None  # (the teacher's memory back; inference never uses it)
