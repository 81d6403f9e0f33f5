"""Conditional Mixture-of-Experts routed by token *attributes*, not token content.

Uni-Perceiver-MoE routes each token by an attribute vector that describes where the token comes
from (modality, task kind, input or target side, causal stream), never by its content.  All tokens
of one segment therefore take the same route, and because a linear map is linear in its weights,
the gate-weighted mixture of the chosen experts' outputs equals ONE linear map with the merged
weights ``W = sum_e g_e W_e`` (and ``b = sum_e g_e b_e``).  :class:`MoELinear` computes that merged
map once per distinct attribute in the sequence, so an MoE layer costs about as much as a dense one.

Attribute vectors have 8 bits (:func:`attribute`), following the public Uni-Perceiver-MoE code:
bits 0 and 3 are always on, bit 1 marks a generative task (captioning), bit 2 region tokens (a v2
addition: proposals for detection/segmentation), bits 4/5 image/text modality, bit 6 the target
side (candidates ``y``), bit 7 the causal stream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTRIBUTE_DIM = 8


def attribute(modality: str, target: bool = False, causal: bool = False,
              generative: bool = False) -> tuple[float, ...]:
    """The 8-bit attribute vector of a token segment.

    Examples:
        >>> attribute('image')                       # classification / retrieval image input
        (1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)
        >>> attribute('text', target=True)           # class names, retrieval captions
        (1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0)
    """
    if modality not in ('image', 'text', 'region'):
        raise ValueError(f"modality must be 'image', 'text' or 'region', got {modality!r}")
    return (1.0, float(generative), float(modality == 'region'), 1.0,
            float(modality in ('image', 'region')), float(modality == 'text'), float(target),
            float(causal))


class AttributeRouter(nn.Module):
    """Gate: ``LayerNorm(Linear(attr))`` then a bias-free linear to expert logits, in fp32.

    In training, Gaussian noise of std ``1/num_experts`` is added to the logits (the route of a
    given attribute then varies a little from step to step, which spreads load over experts).
    The top-k logits are soft-maxed, i.e. the top-k weights renormalised to sum to one.
    """

    def __init__(self, num_experts: int = 8, top_k: int = 2, hidden_dims: int = 64,
                 attribute_dims: int = ATTRIBUTE_DIM, noise: bool = True) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k={top_k} must be in [1, num_experts={num_experts}]')
        self.num_experts, self.top_k, self.noise = num_experts, top_k, noise
        self.embed = nn.Linear(attribute_dims, hidden_dims)
        self.norm = nn.LayerNorm(hidden_dims)
        self.logits = nn.Linear(hidden_dims, num_experts, bias=False)

    def forward(self, attributes: Tensor) -> Tensor:
        """``attributes``: [A, attribute_dims] -> dense gate weights [A, num_experts] (fp32).

        Each row has ``top_k`` non-zero entries that sum to one.
        """
        with torch.autocast(device_type=attributes.device.type, enabled=False):
            hidden = F.linear(attributes.float(), self.embed.weight.float(),
                              self.embed.bias.float())
            hidden = F.layer_norm(hidden, self.norm.normalized_shape, self.norm.weight.float(),
                                  self.norm.bias.float(), self.norm.eps)
            logits = F.linear(hidden, self.logits.weight.float())
            if self.training and self.noise:
                logits = logits + torch.randn_like(logits) / self.num_experts
            top, index = logits.topk(self.top_k, dim=-1)
            return torch.zeros_like(logits).scatter(-1, index, top.softmax(dim=-1))


class MoELinear(nn.Module):
    """A linear layer with ``num_experts`` weight sets, mixed by per-attribute gates.

    ``forward(x, gates, attribute_index)``: ``x`` [B, L, in]; ``gates`` [A, E] from an
    :class:`AttributeRouter`; ``attribute_index`` [L] says which attribute row each position uses
    (the segment layout is shared by the whole batch).  ``gates=None`` uses expert 0 only, which
    is what a layer built with ``num_experts=1`` (a plain dense layer) does.
    """

    def __init__(self, in_features: int, out_features: int, num_experts: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.num_experts = in_features, out_features, \
            num_experts
        self.weight = nn.Parameter(torch.empty(num_experts, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_experts, out_features)) if bias else None
        # merged weights kept between no-grad calls: {gate values: (weight, bias)}, valid for
        # the weights identified by ``_inference_state`` (see :meth:`_merged_for_inference`)
        self._inference_merged: dict[tuple[float, ...], tuple[Tensor, Tensor | None]] = {}
        self._inference_state: tuple | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for e in range(self.num_experts):  # each expert as nn.Linear would initialise it
            nn.init.kaiming_uniform_(self.weight[e], a=math.sqrt(5))
            if self.bias is not None:
                bound = 1 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias[e], -bound, bound)

    def merged(self, gate: Tensor) -> tuple[Tensor, Tensor | None]:
        """The single (weight, bias) equal to the ``gate``-weighted mixture of the experts."""
        gate = gate.to(self.weight.dtype)
        weight = torch.einsum('e,eoi->oi', gate, self.weight)
        bias = gate @ self.bias if self.bias is not None else None
        return weight, bias

    def _weights_state(self) -> tuple:
        """What identifies the current expert weights: storage, device, dtype and the in-place
        version counter (optimiser steps and ``load_state_dict`` bump it; ``.to()`` gives new
        storage)."""
        params = [self.weight] + ([self.bias] if self.bias is not None else [])
        return tuple((p.data_ptr(), p.device, p.dtype, p._version) for p in params)

    def _merged_for_inference(self, gate: Tensor) -> tuple[Tensor, Tensor | None]:
        """:meth:`merged` for a call without autograd, kept until the weights change.

        Merging reads every expert's weights (``num_experts`` times a dense layer's memory
        traffic); at inference the routes and weights are fixed, so each image would repeat
        the same merge.  The cache is keyed by the gate values and dropped as soon as the
        weights are updated, moved or reloaded."""
        state = self._weights_state()
        if state != self._inference_state or len(self._inference_merged) >= 64:
            # (gates only vary without a weight update under a noisy router in training mode)
            self._inference_merged, self._inference_state = {}, state
        key = tuple(gate.tolist())
        if key not in self._inference_merged:
            self._inference_merged[key] = self.merged(gate)
        return self._inference_merged[key]

    def forward(self, x: Tensor, gates: Tensor | None = None,
                attribute_index: Tensor | None = None, merged_cache: dict | None = None,
                attribute_keys: list | None = None,
                attribute_positions: list[list[int]] | None = None) -> Tensor:
        """``merged_cache`` (with ``attribute_keys``, the attribute tuple of each gate row)
        keeps each attribute's merged weights for reuse by later calls: incremental decoding
        applies the same layer to one new position at a time, and merging would otherwise cost
        more than the product itself.  Valid only while weights and gates are fixed (eval).

        ``attribute_positions`` (the positions of each gate row, as Python lists: the decoder
        knows them from its segments) replaces reading them from ``attribute_index``, whose
        values a traced graph (``torch.export``) cannot branch on."""
        if gates is None or self.num_experts == 1:
            return F.linear(x, self.weight[0], None if self.bias is None else self.bias[0])
        if attribute_positions is not None:
            used = [a for a, where in enumerate(attribute_positions) if where]
        elif attribute_index is not None:
            used = attribute_index.unique().tolist()
        else:
            raise ValueError('MoELinear with several experts needs attribute_index')
        out = None
        for a in used:
            if merged_cache is None:
                # (a traced graph merges at each run; ONNX Runtime folds it into a constant)
                weight, bias = self.merged(gates[a]) \
                    if torch.is_grad_enabled() or torch.compiler.is_compiling() \
                    else self._merged_for_inference(gates[a])
            else:
                key = (id(self), attribute_keys[a])
                if key not in merged_cache:
                    merged_cache[key] = self.merged(gates[a])
                weight, bias = merged_cache[key]
            if len(used) == 1:  # one attribute: every position
                return F.linear(x, weight, bias)
            positions = torch.tensor(attribute_positions[a], device=x.device) \
                if attribute_positions is not None \
                else (attribute_index == a).nonzero(as_tuple=True)[0]
            part = F.linear(x[..., positions, :], weight, bias)
            if out is None:  # the products' dtype: under autocast (bf16, fp16) not x's
                out = part.new_empty(*x.shape[:-1], self.out_features)
            out[..., positions, :] = part
        return out

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, out_features={self.out_features}, '
                f'num_experts={self.num_experts}, bias={self.bias is not None}')
