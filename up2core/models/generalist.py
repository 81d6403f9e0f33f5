"""The generalist model: encoders + shared decoder + likelihood, dispatching to tasks.

:class:`UP2Generalist` is an MMEngine ``BaseModel``.  It names no task: its ``tasks`` config maps
task names to Task configs (built from :data:`~up2core.registry.TASKS`), and each batch is handed
to the task named in its data samples' ``task`` metainfo (set by :class:`PackUP2Inputs`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mmengine.model import BaseModel
from torch import Tensor, nn

from up2core.config import ConfigError
from up2core.deprecation import deprecated_alias
from up2core.errors import TaskMismatchError
from up2core.likelihood import UnifiedLikelihood
from up2core.models.decoder import DecoderCache, DecoderOutput, Segment, UnifiedDecoder
from up2core.models.distillation import (
    DecoderDistillation,
    image_kind,
    pass_kind,
    with_distillation,
)
from up2core.models.image_encoder import ImageEncoder, ImageTokens
from up2core.models.proposals import cxcywh_to_xyxy
from up2core.registry import MODELS, TASKS
from up2core.structures import Regions


@MODELS.register_module()
class UP2Generalist(BaseModel):
    """One model for every task.

    Args:
        image_encoder: config of an :class:`ImageEncoder`.
        text_encoder: config of a text encoder (e.g. :class:`HFTextEncoder`).
        decoder: config of the :class:`UnifiedDecoder`; its ``input_dims`` are filled in from the
            encoders' widths.
        tasks: ``dict(name=dict(type=<registered task name>, ...), ...)``, e.g.
            ``dict(classification=dict(type='classification', class_names=[...]))``.
        likelihood: extra kwargs of :class:`UnifiedLikelihood` (its groups come from the tasks).
        data_preprocessor: MMEngine data preprocessor config (normalisation, batching).
        freeze: submodules kept as they are while training, by dotted path
            (``['image_encoder.backbone', 'text_encoder']``; ``up2 train --freeze``): their
            parameters get no gradient and they stay in eval mode (no dropout, batch-norm
            statistics unchanged), the usual way to finetune on new data without forgetting
            what they learned.  Checkpoints are unaffected: nothing is frozen in them.
        tune: selective tuning, the converse of ``freeze``: only the parameters whose names
            match one of these shell patterns train (``['decoder.layers.*.qkv.*',
            'decoder.layers.*.proj.*']``: the shared decoder's attention projections;
            ``up2 train --tune``), every other one is fixed, and each submodule with nothing
            to tune stays in eval mode (batch-norm statistics included).  A finetune then
            changes a stated subset of the base's tensors and nothing else: switched off, it
            is the base exactly; merged, it costs nothing at inference (the checkpoint's
            layout is the base's).
    """

    #: a finetune's distillation from the model it started from (set by ``DistillationHook``;
    #: None: none)
    distillation: DecoderDistillation | None = None

    def __init__(self, image_encoder: dict, text_encoder: dict, decoder: dict, tasks: dict,
                 likelihood: dict | None = None, data_preprocessor: dict | None = None,
                 freeze: list[str] | tuple[str, ...] | None = None,
                 tune: list[str] | tuple[str, ...] | None = None, init_cfg=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not tasks:
            raise ValueError('UP2Generalist needs at least one task in `tasks`')
        self.image_encoder: ImageEncoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        decoder = dict(decoder)
        decoder.setdefault('type', 'UnifiedDecoder')
        input_dims = {'image': self.image_encoder.embed_dims, 'text': self.text_encoder.embed_dims}
        if self.image_encoder.proposal_generator is not None:
            input_dims['region'] = self.image_encoder.embed_dims
        decoder['input_dims'] = {**input_dims, **decoder.get('input_dims', {})}
        self.decoder: UnifiedDecoder = MODELS.build(decoder)
        self.tasks = nn.ModuleDict()
        for name, cfg in tasks.items():
            task = TASKS.require(cfg['type'])(**{k: v for k, v in cfg.items()
                                                        if k != 'type'})
            task.name = name
            self.tasks[name] = task
        groups = sorted({t.likelihood_group for t in self.tasks.values()})
        self.likelihood = UnifiedLikelihood(groups=groups, **(likelihood or {}))
        self._shared: dict[Any, Any] | None = None
        #: ``(batch tensor, [(h, w), ...])`` of the batch being run (:meth:`_batch_image_sizes`)
        self._image_sizes: tuple[_Identity, list] | None = None
        #: the decoder passes of the task running, while they are recorded (distillation)
        self._passes: list | None = None
        #: every task's passes, while a step's forward is recorded (:meth:`recorded_forward`)
        self._passes_by_task: dict[str, list] | None = None
        self.frozen_modules = self._tune(list(tune or ())) + self._freeze(list(freeze or ()))

    def _freeze(self, paths: list[str]) -> list[str]:
        for path in paths:
            try:
                module = self.get_submodule(path)
            except AttributeError:
                parent = path.rpartition('.')[0]
                try:
                    children = [n for n, _ in self.get_submodule(parent).named_children()]
                except AttributeError:
                    parent, children = '', [n for n, _ in self.named_children()]
                where = f"'{parent}'" if parent else 'the model'
                raise ConfigError(f"model.freeze: '{path}' is not a submodule; {where} has "
                                  f"{', '.join(children)}") from None
            for param in module.parameters():  # (MT-AdamW skips gradient-less parameters)
                param.requires_grad_(False)
        return paths

    def _tune(self, patterns: list[str]) -> list[str]:
        """Fix every parameter no pattern matches; returns the largest submodules left with
        nothing to tune (kept in eval mode, as frozen ones)."""
        if not patterns:
            return []
        names = [name for name, _ in self.named_parameters()]
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                top = pattern.split('.')[0]  # (the names under the same top-level module)
                near = [n for n in names if n.startswith(f'{top}.')][:3] or names[:3]
                raise ConfigError(f"model.tune: '{pattern}' matches no parameter; parameter "
                                  f"names look like {', '.join(near)}")
        tuned = set()
        for name, param in self.named_parameters():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                tuned.add(name)
            else:
                param.requires_grad_(False)
        fixed: list[str] = []
        for path, module in self.named_modules():
            inside = [f'{path}.{n}' if path else n for n, _ in module.named_parameters()]
            if not path or not inside or any(n in tuned for n in inside):
                continue
            if not any(path.startswith(f'{done}.') for done in fixed):
                fixed.append(path)
        return fixed

    def train(self, mode: bool = True) -> UP2Generalist:
        """As ``nn.Module.train``, but frozen submodules (``freeze``) stay in eval mode."""
        super().train(mode)
        for path in self.frozen_modules:
            self.get_submodule(path).eval()
        return self

    # ------------------------------------------------------------------ sharing between tasks

    @contextmanager
    def shared_encoding(self) -> Iterator[None]:
        """Within this context, identical work asked for by several tasks is done once.

        The input side of every task never attends to its targets, so when several tasks run
        on the same batch of images (all-task inference, or a training step over every task's
        annotations of the same images) they can share: the image encoding (the same
        ``images`` tensor), the image's decoder segments (same flags), a text segment (same
        texts and flags) and a decoder pass (the very same segments and no extra mask).
        Results are reused by identity of their inputs, so a task that builds its own inputs
        simply gets its own pass.  Gradients flow through shared results to every task's loss.

        Examples:
            >>> with model.shared_encoding():                      # doctest: +SKIP
            ...     a = model.encode_image(images)
            ...     b = model.encode_image(images)                 # the same ImageTokens
        """
        outer = self._shared
        if outer is None:
            self._shared = {}
        try:
            yield
        finally:
            if outer is None:
                self._shared = None

    def _reuse(self, key, compute):
        """``compute()``, or its earlier result for ``key`` inside :meth:`shared_encoding`.

        Keys hold the input objects themselves (not only their ids), so an id is never reused
        by another object while the context lives."""
        if self._shared is None:
            return compute()
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    # ------------------------------------------------------------------ primitives for tasks

    def encode_image(self, images: Tensor) -> ImageTokens:
        """Encode a batch tensor.  When it is the batch :meth:`forward` was given and its
        images have several sizes (padded by the data preprocessor), the encoder is told each
        image's size (``img_shape``), so padding changes no image's tokens."""
        sizes = self._image_sizes[1] if self._image_sizes is not None \
            and self._image_sizes[0].obj is images else None
        image = self._reuse(('image', _Identity(images)),
                            lambda: self.image_encoder(images, sizes) if sizes is not None
                            else self.image_encoder(images))
        if self._passes is not None:  # (distillation compares the encoder's maps too)
            self._passes.append((image_kind(image), image, None))
        return image

    @contextmanager
    def _batch_image_sizes(self, inputs: Tensor, data_samples) -> Iterator[None]:
        """Remember, while a batch runs, the size of each image inside the padded ``inputs``
        (its samples' ``img_shape``); nothing when every image fills the tensor."""
        previous = self._image_sizes
        samples = next(iter(data_samples.values())) if isinstance(data_samples, dict) \
            else data_samples
        sizes = [getattr(s, 'metainfo', {}).get('img_shape') for s in samples or []]
        canvas = tuple(inputs.shape[-2:]) if isinstance(inputs, Tensor) else None
        if canvas is not None and inputs.dim() == 4 and len(sizes) == inputs.shape[0] \
                and all(s is not None for s in sizes) \
                and any(tuple(s[:2]) != canvas for s in sizes):
            self._image_sizes = (_Identity(inputs), [tuple(int(v) for v in s[:2]) for s in sizes])
        try:
            yield
        finally:
            self._image_sizes = previous

    def encode_text(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        return self.text_encoder(texts)

    def decode(self, segments: list[Segment], extra_mask: Tensor | None = None,
               return_cache: bool = False) -> DecoderOutput:
        """Run the shared decoder; ``return_cache`` also keeps every layer's keys and values
        for :meth:`extend`."""
        if extra_mask is not None or return_cache:
            output = self.decoder(segments, extra_mask, return_cache=return_cache)
            if self._passes is not None:
                self._passes.append((pass_kind(segments, extra_mask), output, segments))
            return output
        key = ('decode',) + tuple(_Identity(s) for s in segments)
        output = self._reuse(key, lambda: self.decoder(segments))
        if self._passes is not None:
            self._passes.append((pass_kind(segments, extra_mask), output, segments))
        return output

    def extend(self, cache: DecoderCache, segments: list[Segment], mask: Tensor | None = None,
               keep: int | None = None) -> tuple[list[Tensor], DecoderCache]:
        """Decode new positions after a cached prefix (see :meth:`UnifiedDecoder.extend`)."""
        return self.decoder.extend(cache, segments, mask=mask, keep=keep)

    def image_segments(self, image: ImageTokens, target: bool = False,
                       generative: bool = False) -> list[Segment]:
        """The decoder segments of an image: its global tokens (modality ``image``) and, when
        the encoder has a proposal generator, its proposal tokens (modality ``region``: their
        own modality embedding, MoE attribute and input projection).  ``generative`` sets the
        MoE attribute bit of generative tasks (captioning)."""
        return self._reuse(('image_segments', _Identity(image), target, generative),
                           lambda: self._image_segments(image, target, generative))

    def _image_segments(self, image: ImageTokens, target: bool, generative: bool
                        ) -> list[Segment]:
        g = image.num_global
        segments = [Segment(image.tokens[:, :g], image.valid[:, :g], modality='image',
                            target=target, generative=generative, source='image')]
        if image.tokens.shape[1] > g:
            segments.append(Segment(image.tokens[:, g:], image.valid[:, g:], modality='region',
                                    target=target, generative=generative, source='region'))
        return segments

    def _global_image_segment(self, image: ImageTokens, target: bool = False,
                              generative: bool = False) -> Segment:
        return self.image_segments(image, target, generative)[0]

    #: API 1.0's single image segment: now the first of :meth:`image_segments` (the global
    #: tokens; region tokens have their own segment since API 1.1).
    image_segment = deprecated_alias('model.image_segment', 'model.image_segments',
                                     since='1.1', removed_in='2.0',
                                     adapt=_global_image_segment)

    def region_features(self, image: ImageTokens) -> Tensor:
        """``[B, K, C]``: the outputs of the shared decoder at the K proposal tokens, which it
        reads together with the image's global tokens (inside :meth:`shared_encoding`, every
        task asking for them gets the same pass)."""
        segments = self.image_segments(image)
        if len(segments) < 2:
            raise ValueError('region features need region proposals: set '
                             'model.image_encoder.proposal_generator in the config')
        return self.decode(segments).segments[-1]

    def regions(self, image: ImageTokens, canvas: tuple[int, int]) -> Regions:
        """The proposals of ``image`` as a region-level task uses them: decoder features, boxes
        ``(x0, y0, x1, y1)`` in pixels of the network input (the padded ``canvas``, ``(H, W)``
        of the batch tensor), objectness logits and mask logits (see
        :class:`~up2core.regions.Regions`)."""
        features = self.region_features(image)
        proposals = image.proposals
        height, width = canvas
        if image.image_sizes is not None:  # boxes are fractions of each image's own extent
            scale = image.image_sizes.to(features)[:, None, [1, 0, 1, 0]]
        else:
            scale = features.new_tensor([width, height, width, height])
        return Regions(features=features, boxes=cxcywh_to_xyxy(proposals['boxes']) * scale,
                       objectness=proposals['objectness'], mask_logits=proposals.get('masks'),
                       canvas=(int(height), int(width)), mask_sizes=proposals.get('mask_sizes'))

    def proposal_loss(self, image: ImageTokens, gt_instances: list, canvas: tuple[int, int],
                      with_masks: bool = True) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Losses of the region-proposal network on ``image``'s proposals, and the ground truth
        matched to each proposal token (see :meth:`RegionProposalNetwork.loss`)."""
        generator = self.image_encoder.proposal_generator
        if generator is None:
            raise ValueError('this model has no proposal generator: set '
                             'model.image_encoder.proposal_generator in the config')
        if image.image_sizes is not None:
            return generator.loss(image.proposals, gt_instances, canvas, with_masks=with_masks,
                                  image_sizes=image.image_sizes)
        return generator.loss(image.proposals, gt_instances, canvas, with_masks=with_masks)

    def text_segment(self, texts: list[str], target: bool = False, causal: bool = False,
                     generative: bool = False) -> Segment:
        """Encode ``texts`` and wrap them as a decoder segment."""
        def compute() -> Segment:
            tokens, valid = self.encode_text(texts)
            return Segment(tokens, valid, modality='text', target=target, causal=causal,
                           generative=generative, source='text')

        return self._reuse(('text', tuple(texts), target, causal, generative), compute)

    # ------------------------------------------------------------------ MMEngine interface

    def task_of(self, data_samples: list):
        """The :class:`~up2core.task.Task` of a batch (its samples must all name one)."""
        names = {getattr(s, 'task', None) for s in data_samples}
        if len(names) != 1:
            raise TaskMismatchError(f'a batch must hold one task, got {sorted(map(str, names))}; '
                             f'every pipeline must end with PackUP2Inputs(task=...)')
        (name,) = names
        if name not in self.tasks:
            raise TaskMismatchError(f"batch of task '{name}', but the model has tasks "
                           f"{list(self.tasks)}; add it to model.tasks in the config")
        return self.tasks[name]

    def forward(self, inputs: Tensor, data_samples: list | dict | None = None,
                mode: str = 'tensor'):
        """``data_samples`` is a list (one task's batch) or ``dict(task=samples)``: several
        tasks' samples of the SAME images, run under :meth:`shared_encoding` (the image encoded
        once); the result is then ``dict(task=losses or predictions)``."""
        if data_samples is None:
            raise ValueError('UP2Generalist needs data samples (they name the task)')
        if mode == 'loss' and self.training and self.distillation is not None \
                and self.distillation.active:
            return self._distilled_loss(inputs, data_samples)
        with self._batch_image_sizes(inputs, data_samples):
            if isinstance(data_samples, dict):
                with self.shared_encoding():
                    return {name: self._forward_task(inputs, samples, mode)
                            for name, samples in data_samples.items()}
            return self._forward_task(inputs, data_samples, mode)

    def recorded_forward(self, inputs: Tensor, data_samples: list | dict
                         ) -> tuple[Any, dict[str, list]]:
        """A training step's forward (``mode='loss'``), and the decoder passes each task made
        in it: ``{task: [(kind, DecoderOutput, segments), ...]}`` (see :mod:`.distillation`)."""
        previous, self._passes_by_task = self._passes_by_task, {}
        try:
            return self.forward(inputs, data_samples, 'loss'), self._passes_by_task
        finally:
            self._passes_by_task = previous

    def _distilled_loss(self, inputs: Tensor, data_samples: list | dict):
        """Each distilling task's losses plus its distillation term
        (:class:`DecoderDistillation`); the teacher runs on the distilling tasks alone."""
        distillation = self.distillation
        shared = isinstance(data_samples, dict)
        names = list(data_samples) if shared else [self.task_of(data_samples).name]
        taught_names = [name for name in names if distillation.covers(name)]
        taught = {}
        if taught_names:
            taught = distillation.run_teacher(
                inputs, {n: data_samples[n] for n in taught_names} if shared else data_samples)
        self.distillation = None  # (the student's own step, its passes recorded)
        try:
            if not taught_names:
                return self.forward(inputs, data_samples, 'loss')
            losses, learned = self.recorded_forward(inputs, data_samples)
        finally:
            self.distillation = distillation

        def distilled(name: str, task_losses: dict) -> dict:
            if name not in taught:
                return task_losses
            return with_distillation(task_losses, distillation.loss(learned[name], taught[name]),
                                     inputs)

        if not shared:
            return distilled(names[0], losses)
        return {name: distilled(name, task_losses) for name, task_losses in losses.items()}

    def _forward_task(self, inputs: Tensor, data_samples: list, mode: str):
        task = self.task_of(data_samples)
        if mode == 'loss':
            passes_by_task = self._passes_by_task
            if passes_by_task is None:
                return task.loss(self, inputs, data_samples)
            outer, self._passes = self._passes, []
            try:
                losses = task.loss(self, inputs, data_samples)
                passes_by_task[task.name] = self._passes
            finally:
                self._passes = outer
            return losses
        if mode in ('predict', 'tensor'):
            return task.predict(self, inputs, data_samples)
        raise ValueError(f"unknown mode '{mode}'; use 'loss', 'predict' or 'tensor'")


class _Identity:
    """A dictionary key that compares its object by identity (tensors compare by value)."""

    __slots__ = ('obj',)

    def __init__(self, obj) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj
