"""The contract between the core and a task plugin.

A :class:`Task` is the *policy* of one task over the core's *primitives*.  The generalist model
(:class:`~up2core.models.generalist.UP2Generalist`) owns the encoders, the shared decoder and the
likelihood, and hands itself to the task of each batch:

* ``model.encode_image(images) -> ImageTokens`` (global tokens, then proposal tokens);
* ``model.encode_text(texts) -> (tokens, valid)``;
* ``model.decode(segments) -> DecoderOutput`` (``.spe`` represents the sequence); with
  ``return_cache=True`` it keeps keys/values, and ``model.extend(cache, segments)`` decodes new
  positions after them (incremental generation);
* ``model.likelihood`` — ``logits / loss / predict`` over candidates (``argmax_y P(x, y)``);
* helpers ``model.image_segments`` / ``model.text_segment`` build decoder segments;
* ``model.proposal_loss(image, gt_instances, canvas)`` trains the region proposals (tasks with
  box or mask annotations call it);
* ``model.region_features(image)`` -> ``[B, K, C]``, the proposal tokens' outputs of the shared
  decoder (the ``x`` or ``Y`` of region-level tasks), and ``model.regions(image, canvas)`` ->
  :class:`~up2core.regions.Regions` (those features with each proposal's box in input pixels,
  objectness and mask logits; :func:`~up2core.regions.boxes_to_original` maps boxes back).

Which of these names are public, and how they change, is the plugin API
(:mod:`up2core.deprecation`): ``model.image_segment`` (API 1.0) is a deprecated alias of
``image_segments``.

A task decides what ``x`` and the candidate set ``Y`` are, which loss terms it adds, and how
likelihoods become predictions.  Tasks are ``nn.Module`` s so that task-specific parameters (a
detection head, say) train with the model; most tasks have none.

Tasks are registered in :data:`up2core.registry.TASKS` by plugins, and built by the generalist
model from its ``tasks=dict(name=dict(type=...))`` config.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mmengine.model import BaseModule
from torch import Tensor

if TYPE_CHECKING:  # names for annotations only; at run time this module imports no model code
    from up2core.likelihood import UnifiedLikelihood
    from up2core.models.decoder import DecoderCache, DecoderOutput, Segment
    from up2core.models.image_encoder import ImageTokens

#: key of the model's parameter list in a task's candidate cache (see ``cached_candidates``)
_PARAMS = object()


def _plain(value: Any) -> Any:
    """Tensors and arrays to lists, recursively; other values unchanged."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class TaskModel(Protocol):
    """What a task may use of the model it is handed: the core's primitives.

    :class:`~up2core.models.generalist.UP2Generalist` implements it (this module does not import
    the generalist: the generalist imports the tasks' base class, and imports go one way).
    """

    likelihood: UnifiedLikelihood
    text_encoder: Any

    def encode_image(self, images: Tensor) -> ImageTokens: ...

    def encode_text(self, texts: list[str]) -> tuple[Tensor, Tensor]: ...

    def decode(self, segments: list[Segment], extra_mask: Tensor | None = None,
               return_cache: bool = False) -> DecoderOutput: ...

    def extend(self, cache: DecoderCache, segments: list[Segment], mask: Tensor | None = None,
               keep: int | None = None) -> tuple[list[Tensor], DecoderCache]: ...

    def image_segments(self, image: ImageTokens, target: bool = False,
                       generative: bool = False) -> list[Segment]: ...

    def text_segment(self, texts: list[str], target: bool = False, causal: bool = False,
                     generative: bool = False) -> Segment: ...

    def proposal_loss(self, image: ImageTokens, gt_instances: list, canvas: tuple[int, int],
                      with_masks: bool = True) -> tuple[dict[str, Tensor], list[Tensor]]: ...

    def region_features(self, image: ImageTokens) -> Tensor: ...

    def regions(self, image: ImageTokens, canvas: tuple[int, int]) -> Any:
        """-> :class:`up2core.regions.Regions` (not imported here: regions imports this)."""


def keep_names(own: Sequence[str] | None, base: Sequence[str] | None) -> list[str]:
    """``own`` then every name of ``base`` not among them (the labels of ``own`` keep their
    indices): the candidates of :meth:`Task.kept_names_options`.

    Examples:
        >>> keep_names(['arrow', 'octagon'], ['red circle', 'arrow'])
        ['arrow', 'octagon', 'red circle']
    """
    own = list(own or [])
    return own + [n for n in dict.fromkeys(base or []) if n not in own]


class Task(BaseModule):
    """Base class of every task.

    Args:
        loss_weight: ``w_k`` of the unified loss (multiplies this task's loss terms).
        likelihood_group: the task group whose learned temperature the task uses (defaults to the
            task's name; tasks with alike candidates may share one).
    """

    #: arguments of :meth:`infer` without which the task cannot predict (e.g. ``('texts',)``
    #: for retrieval, which ranks given texts); an all-task inference call leaves the task out
    #: when one of them is not given.
    infer_requires: tuple[str, ...] = ()

    #: the layout of a user's dataset file this task reads (``up2 train CONFIG --data my.yaml``):
    #: ``'coco_instances'``, ``'image_folder'``, ``'captions'`` or one a plugin registered
    #: (:mod:`up2core.data.layouts`); None: the task's data is configured in configs only (API 1.4)
    data_layout: str | None = None

    #: the metrics (their names without the task's prefix, e.g. ``('bbox_mAP',)``) a run's
    #: ``results.png`` draws in this task's panel (:mod:`up2core.engine.results`); names the
    #: evaluator does not report are skipped; empty: its first three (API 1.6)
    headline_metrics: tuple[str, ...] = ()

    @classmethod
    def data_options(cls, layout: str, source: Any, names: dict | None) -> dict:
        """Options of this task's config that a user's data decides (``--data``): e.g. the
        class names a detector scores, the caption vocabulary.  ``names`` is what the layout
        found (``{'train': [...], 'val': [...]}``, or None for layouts without names);
        ``source`` is the task's :class:`~up2core.data.dataset_file.TaskSource`.  The returned
        keys update the task's config; the default changes nothing (API 1.4).

        Examples:
            >>> @classmethod                                              # doctest: +SKIP
            ... def data_options(cls, layout, source, names):
            ...     return {'class_names': names['train']}
        """
        return {}

    @classmethod
    def replay_options(cls, task: str, own: dict) -> dict:
        """Options of ``replay_<task>``, the copy of ``task`` a finetune trains on the base's
        own data (``--replay``), when the user's run trains ``task`` as well; ``own`` is the
        user's config of it (after :meth:`data_options`).  The two copies train one set of
        weights and the finetuned checkpoint keeps ``task``'s state only, so what both must
        share goes here (a caption vocabulary: the base's images must be described among the
        candidates the saved model will predict among), while what tells the data apart (the
        names each copy scores) stays the base's.  The default shares nothing (API 1.5).

        Examples:
            >>> @classmethod                                              # doctest: +SKIP
            ... def replay_options(cls, task, own):
            ...     return {'vocabulary_of': task}
        """
        return {}

    @classmethod
    def kept_names_options(cls, own: dict, base: dict) -> dict:
        """Options of the user's config of this task (``own``, after :meth:`data_options`)
        that keep the names the base config (``base``) trained it on as candidates beside the
        user's (``up2 train --data ... --keep-names``): the user's images then teach that
        their objects are none of the old names too.  Appended after the user's names, so
        the data's labels keep their indices.  The default keeps none (API 1.6).

        Examples:
            >>> @classmethod                                              # doctest: +SKIP
            ... def kept_names_options(cls, own, base):
            ...     extra = [n for n in base['class_names'] if n not in own['class_names']]
            ...     return {'class_names': own['class_names'] + extra}
        """
        return {}

    def data_names(self) -> dict[str, list[str]]:
        """The names this task predicts among, for a checkpoint's record of what the model
        knows (``{'classes': [...]}``; the default: none) (API 1.4)."""
        return {}

    def __init__(self, loss_weight: float = 1.0, likelihood_group: str | None = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.loss_weight = loss_weight
        self.name = ''  # set by the model to the key the task is configured under
        self._likelihood_group = likelihood_group

    @property
    def likelihood_group(self) -> str:
        return self._likelihood_group or self.name

    @abstractmethod
    def loss(self, model: TaskModel, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Loss terms of a batch (keys containing 'loss' are summed by MMEngine)."""

    @abstractmethod
    def predict(self, model: TaskModel, inputs: Tensor, data_samples: list) -> list:
        """Fill the data samples with predictions (``pred_*`` fields) and return them."""

    def infer(self, model: TaskModel, inputs: Tensor, data_samples: list, **kwargs: Any
              ) -> list:
        """Prediction for the inference API; by default :meth:`predict`.  Tasks override it to
        accept inputs that only inference has (e.g. candidate texts to rank)."""
        return self.predict(model, inputs, data_samples)

    def to_result(self, sample) -> dict:
        """One predicted data sample -> the plain dict the inference API returns (without
        ``task``, which the API adds).  The default takes every ``pred_*`` field, without the
        prefix, with tensors as (nested) lists; tasks override it for a tidier form."""
        out: dict[str, Any] = {}
        for key in sample.keys():
            if key.startswith('pred_'):
                out[key[5:]] = _plain(sample.get(key))
        return out

    def format_result(self, result: dict) -> list[str]:
        """Lines ``up2 infer`` prints for a result of :meth:`to_result` (default: one
        ``key: value`` line per field)."""
        return [f'  {key}: {value}' for key, value in result.items() if key != 'task']

    def draw(self, image, sample, out_file: str) -> None:
        """Save a visualisation of ``sample``'s prediction on ``image`` (RGB array) to
        ``out_file``; tasks with something to draw override it."""
        raise NotImplementedError(f"task '{self.name}' has no visualisation")

    def export_head(self, model: TaskModel, **options: Any) -> Any:
        """The task's part of an exported graph (``up2 export``): an
        :class:`~up2core.export.head.ExportHead` mapping the normalised images to named
        tensors, with the candidates the task needs baked in (``options``: ``classes``,
        ``texts``...).  Called once, under ``torch.no_grad``, on the loaded model; tasks that
        can be exported override it (API 1.3)."""
        raise NotImplementedError(f"task '{self.name}' ({type(self).__name__}) cannot be "
                                  f"exported: it defines no export_head")

    def cached_candidates(self, model: TaskModel, key: Hashable, compute: Callable[[], Any]
                          ) -> Any:
        """Candidate features: ``compute()`` at every training step (they depend on the
        weights being trained); in eval, computed once per ``key`` and reused until the weights
        change (an optimiser step, a checkpoint load) or :meth:`clear_cache` runs (on every
        switch between train and eval).

        ``key`` names the candidate set (e.g. the tuple of class names), so that different
        sets, such as the names an inference call brings, are cached side by side.

        Examples:
            >>> def name_features(self, model, names):            # doctest: +SKIP
            ...     return self.cached_candidates(model, tuple(names), lambda: model.decode(
            ...         [model.text_segment(list(names), target=True)]).spe)
        """
        if self.training:
            return compute()
        cache = self.__dict__.setdefault('_candidate_cache', {})
        # Every in-place change of a parameter increments its tensor version; the sum only
        # grows, so it identifies the weights the cached features were computed with.  The
        # parameter list is gathered once per model, not at every call: walking the module
        # tree took ~4 ms per call on the regions model (about 4% of an image's inference).
        # In-place updates and checkpoint loads keep the parameter objects; a model whose first
        # parameter is another object is another model (nothing here holds the model itself,
        # so the task still pickles).
        first = next(model.parameters(), None)
        params = cache.get(_PARAMS)
        if not params or params[0] is not first:
            params = cache[_PARAMS] = tuple(model.parameters())
        version = sum(p._version for p in params)
        hit = cache.get(key)
        # (the parameter tuple stands for the model: another model's features never match)
        if hit is None or hit[0] is not params or hit[1] != version:
            hit = cache[key] = (params, version, compute())
        return hit[2]

    def train(self, mode: bool = True):
        """Switching modes drops caches of candidate embeddings (they change while training)."""
        self.__dict__['_candidate_cache'] = {}
        self.clear_cache()
        return super().train(mode)

    def clear_cache(self) -> None:
        """Forget cached candidate representations (:meth:`cached_candidates`' cache, and
        whatever a task caches by itself: override and call ``super().clear_cache()``)."""
        self.__dict__['_candidate_cache'] = {}
