"""Export-friendly stand-ins for the parts of the model that ``torch.export`` cannot trace.

Two things in the eager model read sizes out of tensor *values*, which a traced graph cannot
branch on:

* mmdet's deformable encoder and decoder carry the feature levels' sizes as a ``[L, 2]`` tensor
  (``spatial_shapes``) and iterate over it; mmcv's :class:`MultiScaleDeformableAttention`
  asserts on its values.  Inside :func:`traceable` the proposal network passes the sizes as a
  list of Python ints instead (mmdet's reference-point and proposal helpers and mmcv's
  PyTorch deformable-attention kernel accept a list as it is), and every mmcv deformable
  attention layer runs :class:`TraceableDeformableAttention`'s forward, which needs no value of
  that tensor.  Same weights, same arithmetic: ``tests/export/test_traceable.py`` checks equal
  outputs.
* the shared decoder's MoE layers find which positions use which expert route from Python lists
  (:meth:`UnifiedDecoder._attribute_table`), always, so nothing is needed here for them.

The stand-ins only change how sizes are carried, so they also run eagerly: the parity tests run
the model inside :func:`traceable` without exporting anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
from torch import Tensor, nn


class TraceableDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's multi-scale deformable attention with the levels' sizes given as Python ints.

    The instances are mmcv's own (:func:`traceable` swaps their class for the duration), so
    parameters and state dicts do not change.  ``spatial_shapes`` is a list of ``(h, w)``; the
    sampling itself is mmcv's PyTorch kernel (``grid_sample`` per level), which exports; mmcv's
    compiled CUDA kernel is not used.
    """

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                identity: Tensor | None = None, query_pos: Tensor | None = None,
                key_padding_mask: Tensor | None = None, reference_points: Tensor | None = None,
                spatial_shapes: list[tuple[int, int]] | Tensor | None = None,
                level_start_index: Tensor | None = None, **kwargs) -> Tensor:
        if isinstance(spatial_shapes, Tensor):  # an eager caller: read the sizes once here
            spatial_shapes = [tuple(int(v) for v in hw) for hw in spatial_shapes.tolist()]
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.transpose(0, 1), value.transpose(0, 1)
        batch, num_query, _ = query.shape
        num_value = value.shape[1]
        if sum(h * w for h, w in spatial_shapes) != num_value:
            raise ValueError(f'deformable attention: the levels {spatial_shapes} hold '
                             f'{sum(h * w for h, w in spatial_shapes)} positions, the value '
                             f'{num_value}')
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(batch, num_value, heads, -1)
        offsets = self.sampling_offsets(query).view(batch, num_query, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, num_query, heads, levels * points)
        weights = weights.softmax(-1).view(batch, num_query, heads, levels, points)
        if reference_points.shape[-1] == 2:  # points: offsets in pixels of each level
            per_pixel = query.new_tensor([[w, h] for h, w in spatial_shapes])
            locations = (reference_points[:, :, None, :, None, :]
                         + offsets / per_pixel[None, None, None, :, None, :])
        elif reference_points.shape[-1] == 4:  # boxes: offsets relative to half the box size
            centre = reference_points[:, :, None, :, None, :2]
            size = reference_points[:, :, None, :, None, 2:]
            locations = centre + offsets / points * size * 0.5
        else:
            raise ValueError(f'reference points must end in 2 or 4 values, got '
                             f'{reference_points.shape[-1]}')
        output = multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations, weights)
        output = self.output_proj(output)
        if not self.batch_first:
            output = output.transpose(0, 1)
        return self.dropout(output) + identity


@contextmanager
def traceable(model: nn.Module) -> Iterator[nn.Module]:
    """Within this context ``model`` (any module holding UP2's proposal network, or none)
    computes the same outputs with parts that ``torch.export`` can trace (module doc).

    Examples:
        >>> with traceable(model):                                   # doctest: +SKIP
        ...     program = torch.export.export(graph, (images,))
    """
    from up2core.models.proposals import RegionProposalNetwork

    swapped: list[tuple[nn.Module, type]] = []
    networks: list[tuple[RegionProposalNetwork, bool]] = []
    try:
        for module in model.modules():
            if type(module) is MultiScaleDeformableAttention:
                swapped.append((module, type(module)))
                module.__class__ = TraceableDeformableAttention
            elif isinstance(module, RegionProposalNetwork):
                networks.append((module, module.static_shapes))
                module.static_shapes = True
        yield model
    finally:
        for module, cls in swapped:
            module.__class__ = cls
        for network, before in networks:
            network.static_shapes = before


__all__ = ['TraceableDeformableAttention', 'traceable']
