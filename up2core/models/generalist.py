"""The generalist model: encoders + shared decoder + likelihood, dispatching to tasks.

:class:`UP2Generalist` is an MMEngine ``BaseModel``.  It names no task: its ``tasks`` config maps
task names to Task configs (built from :data:`~up2core.registry.TASKS`), and each batch is handed
to the task named in its data samples' ``task`` metainfo (set by :class:`PackUP2Inputs`).
"""

from __future__ import annotations

from mmengine.model import BaseModel
from torch import Tensor, nn

from up2core.errors import TaskMismatchError
from up2core.likelihood import UnifiedLikelihood
from up2core.models.decoder import DecoderCache, DecoderOutput, Segment, UnifiedDecoder
from up2core.models.image_encoder import ImageEncoder, ImageTokens
from up2core.registry import MODELS, TASKS
from up2core.task import Task


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
    """

    def __init__(self, image_encoder: dict, text_encoder: dict, decoder: dict, tasks: dict,
                 likelihood: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg=None) -> None:
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
            task: Task = TASKS.require(cfg['type'])(**{k: v for k, v in cfg.items()
                                                        if k != 'type'})
            task.name = name
            self.tasks[name] = task
        groups = sorted({t.likelihood_group for t in self.tasks.values()})
        self.likelihood = UnifiedLikelihood(groups=groups, **(likelihood or {}))

    # ------------------------------------------------------------------ primitives for tasks

    def encode_image(self, images: Tensor) -> ImageTokens:
        return self.image_encoder(images)

    def encode_text(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        return self.text_encoder(texts)

    def decode(self, segments: list[Segment], extra_mask: Tensor | None = None,
               return_cache: bool = False) -> DecoderOutput:
        """Run the shared decoder; ``return_cache`` also keeps every layer's keys and values
        for :meth:`extend`."""
        return self.decoder(segments, extra_mask, return_cache=return_cache)

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
        g = image.num_global
        segments = [Segment(image.tokens[:, :g], image.valid[:, :g], modality='image',
                            target=target, generative=generative, source='image')]
        if image.tokens.shape[1] > g:
            segments.append(Segment(image.tokens[:, g:], image.valid[:, g:], modality='region',
                                    target=target, generative=generative, source='region'))
        return segments

    def proposal_loss(self, image: ImageTokens, gt_instances: list, canvas: tuple[int, int],
                      with_masks: bool = True) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Losses of the region-proposal network on ``image``'s proposals, and the ground truth
        matched to each proposal token (see :meth:`RegionProposalNetwork.loss`)."""
        generator = self.image_encoder.proposal_generator
        if generator is None:
            raise ValueError('this model has no proposal generator: set '
                             'model.image_encoder.proposal_generator in the config')
        return generator.loss(image.proposals, gt_instances, canvas, with_masks=with_masks)

    def text_segment(self, texts: list[str], target: bool = False, causal: bool = False,
                     generative: bool = False) -> Segment:
        """Encode ``texts`` and wrap them as a decoder segment."""
        tokens, valid = self.encode_text(texts)
        return Segment(tokens, valid, modality='text', target=target, causal=causal,
                       generative=generative, source='text')

    # ------------------------------------------------------------------ MMEngine interface

    def task_of(self, data_samples: list) -> Task:
        names = {getattr(s, 'task', None) for s in data_samples}
        if len(names) != 1:
            raise TaskMismatchError(f'a batch must hold one task, got {sorted(map(str, names))}; '
                             f'every pipeline must end with PackUP2Inputs(task=...)')
        (name,) = names
        if name not in self.tasks:
            raise TaskMismatchError(f"batch of task '{name}', but the model has tasks "
                           f"{list(self.tasks)}; add it to model.tasks in the config")
        return self.tasks[name]

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = 'tensor'):
        if data_samples is None:
            raise ValueError('UP2Generalist needs data samples (they name the task)')
        task = self.task_of(data_samples)
        if mode == 'loss':
            return task.loss(self, inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return task.predict(self, inputs, data_samples)
        raise ValueError(f"unknown mode '{mode}'; use 'loss', 'predict' or 'tensor'")
