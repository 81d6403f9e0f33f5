"""Distillation from a frozen copy of the model: keep the decoder's outputs where they were.

A finetune on new data drifts the shared encoders and decoder, and every task reads them, so
the tasks the new data does not train forget.  :class:`DecoderDistillation` holds a frozen copy
of the model as it was before the finetune (the *teacher*: the checkpoint it started from) and
adds to each task's training loss a term that pulls the student's decoder outputs back to the
teacher's on the same batch: the teacher runs the same task code on the same inputs, and every
pass of the shared decoder is paired with the teacher's pass of the same kind (its segments'
modality, flags and shapes, in call order).  Compared, per pair:

* the ``<SPE>`` output (what classification, retrieval and the candidate names are read from);
* the outputs at the tokens both passes have in the same places: every segment but the
  proposal (``region``) tokens, which are the top-scoring proposals of each model and so are
  not the same objects in the two;
* with ``image=True``, the image encoder's output of each :meth:`encode_image` call, paired
  like a pass: the neck's maps and the region proposals' encoder memory, pixel by pixel
  (:func:`image_distance`).

``tasks`` limits the term to the tasks it names (the teacher then runs on their batches only).

The term is ``weight * mean(1 - cos(student, teacher))`` over those outputs: zero at the start
of a finetune, and it names no task, so a plugin gets it for nothing (as ZSCL and LwF do for
CLIP and classifiers: the base's own outputs on the current data as soft targets for what the
data does not cover).  :class:`~up2core.engine.hooks.DistillationHook` sets it up after the
checkpoint is loaded (``up2 train --distill W``).

Examples:
    >>> distillation = DecoderDistillation(teacher, weight=1.0)   # doctest: +SKIP
    >>> model.distillation = distillation                         # doctest: +SKIP
"""

from __future__ import annotations

import copy
import fnmatch
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the decoder segments whose tokens are the same objects in the student and the teacher
ALIGNED_SOURCES = ('image', 'text', None)

#: the loss term each task's losses get
LOSS_NAME = 'loss_distill'


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that never changes: no gradient, and no teacher of its own.

    It stays in training mode, so that it runs the very code the student runs in a training
    step (training-only tokens, no cached candidates, batch norm reading the batch), and it
    keeps the student's sources of noise (dropout, router noise, denoising queries):
    :meth:`DecoderDistillation.run_teacher` has it draw the very numbers the student draws next,
    so the two differ by their weights alone."""
    teacher = copy.deepcopy(model)
    teacher.distillation = None
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.train()


def pass_kind(segments, extra_mask) -> tuple:
    """What pairs a decoder pass of the student with one of the teacher: each segment's
    modality, flags, source and shape, and whether it had an extra mask."""
    return tuple((s.modality, s.target, s.causal, s.generative, s.source,
                  tuple(s.tokens.shape[:2])) for s in segments) + (extra_mask is None,)


def image_kind(image) -> tuple:
    """What pairs the student's image encoding with the teacher's: the neck's map shapes."""
    return ('image encoder',) + tuple(tuple(level.shape) for level in image.features)


def image_distance(student, teacher) -> Tensor:
    """The distance between two encodings of the same images (:class:`ImageTokens`): every
    neck map, pixel by pixel over channels, and the proposal network's encoder memory where it
    is kept for training (``proposals['denoising']['value']``; padding left out).  Both are
    on the image's own grid, so the student's pixel and the teacher's are the same place."""
    terms = [_distance(s.flatten(2).transpose(1, 2), t.flatten(2).transpose(1, 2))
             for s, t in zip(student.features, teacher.features)]
    s_memory = student.proposals.get('denoising', {}).get('value')
    t_memory = teacher.proposals.get('denoising', {}).get('value')
    if s_memory is not None and t_memory is not None and s_memory.shape == t_memory.shape:
        padding = student.proposals['denoising'].get('key_padding_mask')
        terms.append(_distance(s_memory, t_memory, None if padding is None else ~padding))
    return torch.stack(terms).mean()


def _distance(student: Tensor, teacher: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean ``1 - cos`` over the last dimension (only where ``valid``)."""
    gap = 1 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1)
    if valid is not None:
        weights = valid.to(gap.dtype)
        return (gap * weights).sum() / weights.sum().clamp(min=1)
    return gap.mean()


def output_distance(student, teacher, segments) -> Tensor:
    """The distillation distance between two outputs of the same kind of pass (see module)."""
    terms = [_distance(student.spe, teacher.spe)]
    for seg, s_out, t_out in zip(segments, student.segments, teacher.segments):
        if seg.source in ALIGNED_SOURCES and seg.modality != 'region' \
                and s_out.shape == t_out.shape:
            terms.append(_distance(s_out, t_out, seg.valid))
    return torch.stack(terms).mean()


class DecoderDistillation:
    """The teacher and the weight of the distillation term (see module).

    Not an ``nn.Module`` on purpose: the teacher is no part of the model's state (checkpoints,
    the optimizer and ``model.to`` never see it); it is built from the model on its device.

    Args:
        teacher: the frozen model (:func:`frozen_copy`).
        weight: of the ``loss_distill`` term in every task's loss.
        tasks: shell patterns of the tasks that distil (``['replay_*']``: the replayed ones
            only); ``None``: every task.  The teacher runs only on their batches.
        image: also keep the image encoder's maps (:func:`image_distance`), paired like a
            pass, in the same mean.
    """

    def __init__(self, teacher: nn.Module, weight: float = 1.0,
                 tasks: list[str] | tuple[str, ...] | None = None, image: bool = False) -> None:
        if not 0 < weight < float('inf'):
            raise ValueError(f'distillation weight must be > 0, got {weight}')
        if tasks is not None and (isinstance(tasks, str) or not tasks):
            raise ValueError(f'distillation tasks: give a list of task-name patterns (or None '
                             f'for every task), got {tasks!r}')
        self.teacher = teacher
        self.weight = float(weight)
        self.tasks = None if tasks is None else tuple(tasks)
        self.image = bool(image)
        #: whether this step distils (``DistillationHook(every=k)`` turns it off in between)
        self.active = True

    def covers(self, task: str) -> bool:
        """Whether ``task`` distils (its name matches one of :attr:`tasks`)."""
        return self.tasks is None or any(fnmatch.fnmatchcase(task, p) for p in self.tasks)

    def run_teacher(self, inputs: Tensor, data_samples) -> dict[str, list]:
        """The teacher's decoder passes on this batch, per task (its losses are dropped).

        The random number generators are put back afterwards, so the student's step draws the
        same dropout masks, router noise and denoising queries as the teacher's did."""
        devices = [inputs.device] if inputs.device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            return self.teacher.recorded_forward(inputs, data_samples)[1]

    def loss(self, student_passes: list, teacher_passes: list) -> Tensor | None:
        """``weight * mean distance`` over the student's passes that the teacher made too
        (the k-th pass of a kind pairs with the teacher's k-th pass of that kind)."""
        taught: dict[tuple, list] = defaultdict(list)
        for kind, output, _ in teacher_passes:
            taught[kind].append(output)
        seen: dict[tuple, int] = defaultdict(int)
        distances = []
        for kind, output, segments in student_passes:
            index = seen[kind]
            seen[kind] += 1
            if index >= len(taught[kind]):
                continue
            if segments is None:  # the image encoder's (see image_kind)
                if self.image:
                    distances.append(image_distance(output, taught[kind][index]))
            else:
                distances.append(output_distance(output, taught[kind][index], segments))
        if not distances:
            return None
        return self.weight * torch.stack(distances).mean()


def with_distillation(losses: dict, term: Tensor | None, like: Tensor) -> dict:
    """``losses`` with :data:`LOSS_NAME` added (a zero on ``like``'s device when no pass could be
    paired: a task whose passes all differ from the teacher's)."""
    losses = dict(losses)
    losses[LOSS_NAME] = term if term is not None else like.new_zeros(())
    return losses
