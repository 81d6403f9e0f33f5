"""What a task puts into an exported graph: the part after the shared model.

A task exports by returning an :class:`ExportHead` from :meth:`Task.export_head
<up2core.task.Task.export_head>`.  The head holds the task's candidate embeddings as buffers
(class names, category names, texts: computed once at export, so the graph holds no text
encoder) and maps the normalised image batch to named tensors.  Two heads cover the built-in
tasks and most new ones:

* :class:`CandidateScoresHead`: one probability per candidate for the whole image
  (classification; retrieval over given texts);
* :class:`RegionsHead`: the best ``max_per_image`` (proposal, name) pairs with their boxes,
  scores, labels and, for mask tasks, mask logits (detection, segmentation).

Examples:
    A task of a plugin scoring its own candidates::

        def export_head(self, model, **options):
            return CandidateScoresHead(self.image_features, self.candidate_features(model),
                                       self.likelihood_group,
                                       metadata={'candidates': self.candidates})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


class ExportHead(nn.Module):
    """Base class: ``forward(model, inputs, *extra) -> tuple of tensors`` named by
    ``output_names``.

    ``inputs`` is the normalised image batch the model's data preprocessor would give
    (``[N, 3, H, W]``); ``metadata`` is plain JSON written beside the exported file (what the
    outputs index: class names, texts...).  A head that needs more than the image (captioning:
    the tokens so far) names its extra graph inputs in ``input_names`` and gives example
    tensors for them (:meth:`example_inputs`); their first dimension is the batch.
    """

    #: names of the tensors :meth:`forward` returns, in order (the graph's output names)
    output_names: tuple[str, ...] = ()
    #: names of the graph's inputs after ``images`` (none for most tasks)
    input_names: tuple[str, ...] = ()

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.metadata = dict(metadata or {})

    def example_inputs(self, batch: int) -> tuple[Tensor, ...]:
        """Example values of the extra inputs for a batch of ``batch`` images (for tracing)."""
        return ()

    def forward(self, model, inputs: Tensor, *extra: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError


class CandidateScoresHead(ExportHead):
    """``scores`` ``[N, M]``: the probability of each of M candidates for each image.

    Args:
        image_features: ``(model, inputs) -> [N, C]``, the task's image representation.
        candidates: ``[M, C]`` candidate embeddings, baked into the graph.
        group: the likelihood group whose temperature scales the logits.
        metadata: written beside the exported file (e.g. ``{'classes': [...]}``).
    """

    output_names = ('scores',)

    def __init__(self, image_features: Callable[[Any, Tensor], Tensor], candidates: Tensor,
                 group: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(metadata)
        self._image_features = image_features
        self.group = group
        self.register_buffer('candidates', candidates.detach().clone())

    def forward(self, model, inputs: Tensor) -> tuple[Tensor]:
        x = self._image_features(model, inputs)
        return (model.likelihood.logits(x, self.candidates, self.group).softmax(-1),)


class RegionsHead(ExportHead):
    """The best ``max_per_image`` (proposal, name) pairs of each image, as
    :meth:`RegionTask.predict <up2core.regions.RegionTask.predict>` ranks them.

    Outputs: ``boxes`` ``[N, n, 4]`` (x0, y0, x1, y1 in pixels of the graph's input, clipped
    to it), ``scores`` ``[N, n]`` (best first), ``labels`` ``[N, n]`` (int64, indexing the
    names) and, with ``with_masks``, ``mask_logits`` ``[N, n, h, w]`` at the proposal
    network's mask resolution: :func:`up2core.regions.masks_to_original` (upsample, crop,
    sigmoid, threshold) turns them into the masks the eager model gives, outside the graph.
    ``n`` is ``min(max_per_image, proposals x names)``.

    Args:
        names: ``[M, C]`` the names' embeddings, baked into the graph.
        group: the likelihood group whose temperature scales the logits.
        combine: ``(objectness logits [N, K], name probabilities [N, K, M]) -> scores``, the
            task's score rule (:func:`up2core.regions.combine_scores`).
        max_per_image: ``n``, the pairs kept per image.
        with_masks: also output the kept proposals' mask logits.
        metadata: written beside the exported file.
    """

    def __init__(self, names: Tensor, group: str, combine: Callable[[Tensor, Tensor], Tensor],
                 max_per_image: int, with_masks: bool,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(metadata)
        self.group, self._combine = group, combine
        self.max_per_image, self.with_masks = max_per_image, with_masks
        self.register_buffer('names', names.detach().clone())
        self.output_names = ('boxes', 'scores', 'labels') + (('mask_logits',) if with_masks else ())

    def forward(self, model, inputs: Tensor) -> tuple[Tensor, ...]:
        height, width = inputs.shape[-2:]
        regions = model.regions(model.encode_image(inputs), (height, width))
        batch, num_regions, _ = regions.features.shape
        num_names = self.names.shape[0]
        probs = model.likelihood.logits(regions.features.flatten(0, 1), self.names,
                                        self.group).softmax(-1).view(batch, num_regions, -1)
        scores = self._combine(regions.objectness, probs)
        top = scores.flatten(1).topk(min(self.max_per_image, num_regions * num_names), dim=1)
        which = torch.div(top.indices, num_names, rounding_mode='floor')
        labels = top.indices - which * num_names
        boxes = regions.boxes.gather(1, which[..., None].expand(-1, -1, 4))
        limit = boxes.new_tensor([width, height, width, height])
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        outputs = (boxes, top.values, labels)
        if self.with_masks:
            logits = regions.mask_logits
            outputs += (logits.gather(1, which[..., None, None].expand(
                -1, -1, *logits.shape[-2:])),)
        return outputs


__all__ = ['CandidateScoresHead', 'ExportHead', 'RegionsHead']
