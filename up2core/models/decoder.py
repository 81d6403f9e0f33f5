"""The shared decoder: one Transformer that encodes every task's inputs AND candidates.

Tasks describe a sequence as a list of :class:`Segment` s (image tokens, region tokens, text
tokens), each already at the decoder width or projected to it here.  The decoder prepends a learned
``<SPE>`` token (its output represents the whole sequence), adds a modality embedding per token,
builds the attention mask from the segments, and runs ``depth`` BERT-style (post-LayerNorm) layers
whose linear maps may be Conditional-MoE layers (:mod:`up2core.models.moe`).

Attention rule (a prefix-LM generalised to several segments): a key in a *non-causal* segment is
visible to every query; a key in a *causal* segment is visible to queries of the same segment at
the same or a later position, and to queries of any later segment.  Padding keys are never
visible.  ``extra_mask`` lets a task AND in patterns of its own (e.g. captioning's two streams).

Incremental decoding: ``forward(..., return_cache=True)`` also returns every layer's keys and
values (a :class:`DecoderCache`); :meth:`UnifiedDecoder.extend` then runs only NEW positions
against them, so a generated token costs one position, not the whole prefix again.

Examples:
    >>> dec = UnifiedDecoder(embed_dims=64, num_heads=4, ffn_dims=128, depth=2)
    >>> out = dec([Segment(torch.randn(2, 5, 64), modality='image')])
    >>> out.spe.shape, out.segments[0].shape
    (torch.Size([2, 64]), torch.Size([2, 5, 64]))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from up2core.models.moe import ATTRIBUTE_DIM, AttributeRouter, MoELinear, attribute
from up2core.registry import MODELS

MODALITIES = ('spe', 'image', 'region', 'text')


@dataclass
class Segment:
    """A run of tokens that share modality, attribute and causality.

    Args:
        tokens: [B, L, C] features; ``C`` is the decoder width, unless ``source`` names an input
            projection of the decoder (``'image'`` or ``'text'``) that maps ``C`` to it.
        valid: [B, L] bool, True for real tokens (None: all real).
        modality: 'image', 'region' or 'text'.
        target: the segment encodes a candidate ``y`` (class name, caption) rather than an input.
        causal: tokens see only earlier tokens of this segment.
        generative: the segment belongs to a generative task (captioning).
        source: which input projection to apply first (None: tokens are at decoder width).
    """

    tokens: Tensor
    valid: Tensor | None = None
    modality: str = 'image'
    target: bool = False
    causal: bool = False
    generative: bool = False
    source: str | None = None
    attribute: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.attribute = attribute(self.modality, self.target, self.causal, self.generative)


@dataclass
class DecoderCache:
    """Keys and values of the positions decoded so far, for :meth:`UnifiedDecoder.extend`.

    ``key_buffers`` / ``value_buffers``: per layer [B, heads, capacity, head_dims], of which the
    first ``len(self)`` positions are filled (:attr:`keys` / :attr:`values` are those views);
    ``valid``: [B, N] bool (padding is never attended); ``merged``: each MoE linear's merged
    weights per attribute, reused by every later step (eval only: weights and gates must not
    change while a cache lives).

    Why buffers: a decoding step adds one or two positions to a prefix of hundreds (an image's
    tokens); concatenating the whole cache at every step and layer, and gathering it again at
    every beam reorder, cost more than the step's own products.  Positions are written in
    place, and a beam reorder moves only the positions decoded since the beams were copied
    (``rows``: the source row of each row; ``split``: the length at that copy).  So a cache is
    consumed by :meth:`UnifiedDecoder.extend` and by an in-place :meth:`select`: continue from
    the cache they return, not from the one they were given.
    """

    key_buffers: list[Tensor]
    value_buffers: list[Tensor]
    valid: Tensor
    merged: dict = field(default_factory=dict)
    rows: Tensor | None = None
    split: int = 0

    def __len__(self) -> int:
        return self.valid.shape[1]

    @property
    def keys(self) -> list[Tensor]:
        """Per layer [B, heads, N, head_dims] (views of the buffers)."""
        return [k[:, :, :len(self)] for k in self.key_buffers]

    @property
    def values(self) -> list[Tensor]:
        return [v[:, :, :len(self)] for v in self.value_buffers]

    def reserve(self, positions: int) -> None:
        """Make room for ``positions`` more positions (buffers grow by at least 32)."""
        needed = len(self) + positions
        capacity = self.key_buffers[0].shape[2] if self.key_buffers else needed
        if needed <= capacity:
            return
        capacity = max(needed, capacity + 32)
        for buffers in (self.key_buffers, self.value_buffers):
            for i, old in enumerate(buffers):
                grown = old.new_empty(*old.shape[:2], capacity, old.shape[3])
                grown[:, :, :len(self)] = old[:, :, :len(self)]
                buffers[i] = grown

    def select(self, index: Tensor) -> DecoderCache:
        """The cache of batch rows ``index`` (repeat rows for beams, reorder them after a
        beam-search step).

        A reorder that keeps every row's source (each beam replaced by a beam of the same
        image) moves only the positions decoded since the rows were copied, in place; any
        other selection copies the buffers."""
        n = len(self)
        rows = self.rows if self.rows is not None else torch.arange(
            self.valid.shape[0], device=self.valid.device)
        chosen = rows.index_select(0, index)
        if index.numel() == rows.numel() and torch.equal(chosen, rows):
            for buffer in self.key_buffers + self.value_buffers:
                buffer[:, :, self.split:n] = buffer[:, :, self.split:n].index_select(0, index)
            return DecoderCache(self.key_buffers, self.value_buffers,
                                self.valid.index_select(0, index), self.merged, rows, self.split)
        return DecoderCache([k.index_select(0, index) for k in self.key_buffers],
                            [v.index_select(0, index) for v in self.value_buffers],
                            self.valid.index_select(0, index), self.merged, chosen, n)


@dataclass
class DecoderOutput:
    """``spe``: [B, C] output at the ``<SPE>`` position; ``segments``: outputs per input segment;
    ``hidden``: [B, 1 + L, C] the whole output sequence; ``cache``: keys and values of every
    position (only when asked for)."""

    spe: Tensor
    segments: list[Tensor]
    hidden: Tensor
    cache: DecoderCache | None = None


def _valid(segments: list[Segment], batch_size: int, device) -> Tensor:
    """[B, L] validity of the segments' tokens, concatenated."""
    return torch.cat([seg.valid.bool() if seg.valid is not None else
                      torch.ones(batch_size, seg.tokens.shape[1], dtype=torch.bool, device=device)
                      for seg in segments], dim=1)


def build_attention_mask(segments: list[Segment], batch_size: int, device) -> Tensor:
    """Boolean [B, 1 + L, 1 + L] mask (True = may attend), ``<SPE>`` first (see module doc)."""
    seg_ids, pos, causal = [0], [0], [False]
    for index, seg in enumerate(segments, start=1):
        length = seg.tokens.shape[1]
        seg_ids += [index] * length
        pos += list(range(length))
        causal += [seg.causal] * length
    seg_ids_t = torch.tensor(seg_ids, device=device)
    pos_t = torch.tensor(pos, device=device)
    causal_t = torch.tensor(causal, device=device)
    q_seg, k_seg = seg_ids_t[:, None], seg_ids_t[None, :]
    same_and_not_future = (q_seg == k_seg) & (pos_t[:, None] >= pos_t[None, :])
    allowed = ~causal_t[None, :] | same_and_not_future | (q_seg > k_seg)
    key_valid = torch.cat([torch.ones(batch_size, 1, dtype=torch.bool, device=device),
                           _valid(segments, batch_size, device)], dim=1)  # [B, 1 + L]
    return allowed[None] & key_valid[:, None, :]


class DecoderLayer(nn.Module):
    """Post-LN Transformer layer (BERT); every linear map is an :class:`MoELinear`."""

    def __init__(self, embed_dims: int, num_heads: int, ffn_dims: int, dropout: float = 0.1,
                 num_experts: int = 1, moe_attention: bool = False, top_k: int = 2,
                 router_dims: int = 64) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        attn_experts = num_experts if moe_attention else 1
        self.qkv = MoELinear(embed_dims, 3 * embed_dims, attn_experts)
        self.proj = MoELinear(embed_dims, embed_dims, attn_experts)
        self.fc1 = MoELinear(embed_dims, ffn_dims, num_experts)
        self.fc2 = MoELinear(ffn_dims, embed_dims, num_experts)
        self.norm1, self.norm2 = nn.LayerNorm(embed_dims), nn.LayerNorm(embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.attn_router = AttributeRouter(num_experts, top_k, router_dims) \
            if attn_experts > 1 else None
        self.ffn_router = AttributeRouter(num_experts, top_k, router_dims) \
            if num_experts > 1 else None

    def forward(self, x: Tensor, mask: Tensor, attributes: Tensor,
                attribute_positions: list[list[int]],
                past: tuple[Tensor, Tensor, int] | None = None,
                merged: dict | None = None, attribute_keys: list | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` [B, L, C] -> (output [B, L, C], this call's keys and values).

        ``attributes`` [A, ATTRIBUTE_DIM]: the distinct attributes; ``attribute_positions``:
        the positions of ``x`` that use each of them.

        ``past``: ``(key_buffer, value_buffer, N_past)``, a :class:`DecoderCache` layer whose
        first ``N_past`` positions ``x``'s queries also attend to; this call's keys and values
        are written after them, in place (then ``mask`` is [B, L, N_past + L]);
        ``merged``/``attribute_keys``: see :class:`MoELinear`.
        """
        gates_key = ('gates', id(self), tuple(attribute_keys or ()))
        if merged is not None and gates_key in merged:  # eval: the routes do not change
            attn_gates, ffn_gates = merged[gates_key]
        else:
            attn_gates = self.attn_router(attributes) if self.attn_router is not None else None
            ffn_gates = self.ffn_router(attributes) if self.ffn_router is not None else None
            if merged is not None:
                merged[gates_key] = (attn_gates, ffn_gates)
        route = dict(attribute_positions=attribute_positions, merged_cache=merged,
                     attribute_keys=attribute_keys)
        b, n, c = x.shape
        qkv = self.qkv(x, attn_gates, **route).view(b, n, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        keys, values = k, v
        if past is not None:  # write after the cached positions, attend to all of them
            key_buffer, value_buffer, length = past
            key_buffer[:, :, length:length + n] = k
            value_buffer[:, :, length:length + n] = v
            keys, values = key_buffer[:, :, :length + n], value_buffer[:, :, :length + n]
        dropout = self.dropout.p if self.training else 0.0
        attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask[:, None],
                                              dropout_p=dropout)
        attn = attn.transpose(1, 2).reshape(b, n, c)
        x = self.norm1(x + self.dropout(self.proj(attn, attn_gates, **route)))
        hidden = F.gelu(self.fc1(x, ffn_gates, **route))
        return self.norm2(x + self.dropout(self.fc2(hidden, ffn_gates, **route))), (k, v)


@MODELS.register_module()
class UnifiedDecoder(BaseModule):
    """The shared Transformer decoder of UP2 (paper: BERT-base configuration, 6 layers).

    Args:
        embed_dims, num_heads, ffn_dims, depth: Transformer size (paper: 768, 12, 3072, 6).
        input_dims: widths of the encoders whose tokens it projects, e.g.
            ``dict(image=256, text=384)``; a Segment with ``source='text'`` is projected.
        moe: ``None`` for dense layers, or ``dict(num_experts=8, top_k=2, layers='every_other',
            attention=True)``; ``layers`` is 'all', 'every_other' or a list of layer indices.
        dropout: dropout in attention and FFN outputs.
    """

    def __init__(self, embed_dims: int = 768, num_heads: int = 12, ffn_dims: int = 3072,
                 depth: int = 6, input_dims: dict[str, int] | None = None,
                 moe: dict | None = None, dropout: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.embed_dims = embed_dims
        self.spe = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.modality_embed = nn.Embedding(len(MODALITIES), embed_dims)
        self.input_proj = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(dims, embed_dims), nn.LayerNorm(embed_dims))
            for name, dims in (input_dims or {}).items()})
        moe_layers = self._moe_layers(moe, depth)
        moe = moe or {}
        self.layers = nn.ModuleList(
            DecoderLayer(embed_dims, num_heads, ffn_dims, dropout,
                         num_experts=moe.get('num_experts', 8) if i in moe_layers else 1,
                         moe_attention=moe.get('attention', True), top_k=moe.get('top_k', 2),
                         router_dims=moe.get('router_dims', 64))
            for i in range(depth))
        nn.init.normal_(self.spe, std=0.02)
        nn.init.normal_(self.modality_embed.weight, std=0.02)

    @staticmethod
    def _moe_layers(moe: dict | None, depth: int) -> set[int]:
        if not moe:
            return set()
        layers = moe.get('layers', 'every_other')
        if layers == 'all':
            return set(range(depth))
        if layers == 'every_other':
            return set(range(1, depth, 2))
        return set(layers)

    def _embed(self, segments: list[Segment]) -> list[Tensor]:
        """Each segment's tokens projected to the decoder width, plus its modality embedding."""
        pieces = []
        for seg in segments:
            tokens = seg.tokens
            if seg.source is not None:
                if seg.source not in self.input_proj:
                    raise KeyError(f"no input projection '{seg.source}'; the decoder has "
                                   f"{list(self.input_proj)} (set input_dims in its config)")
                tokens = self.input_proj[seg.source](tokens)
            if tokens.shape[-1] != self.embed_dims:
                raise ValueError(f'segment of width {tokens.shape[-1]} given to a decoder of '
                                 f'width {self.embed_dims}; set its source to project it')
            pieces.append(tokens + self.modality_embed.weight[MODALITIES.index(seg.modality)])
        return pieces

    @staticmethod
    def _attribute_table(runs: list[tuple[Segment, int]], device
                         ) -> tuple[Tensor, list[list[int]], list[tuple[float, ...]]]:
        """Distinct attributes of ``runs`` (segment, length), the positions that use each of
        them (Python lists: known from the segments, so no MoE layer reads them back from a
        tensor), and the attribute tuples (keys of the MoE merged-weight cache)."""
        table: list[tuple[float, ...]] = []
        positions: list[list[int]] = []
        start = 0
        for seg, length in runs:
            if seg.attribute not in table:
                table.append(seg.attribute)
                positions.append([])
            positions[table.index(seg.attribute)] += range(start, start + length)
            start += length
        return torch.tensor(table, device=device), positions, table

    def forward(self, segments: list[Segment], extra_mask: Tensor | None = None,
                return_cache: bool = False) -> DecoderOutput:
        if not segments:
            raise ValueError('the decoder needs at least one segment')
        batch = segments[0].tokens.shape[0]
        device = segments[0].tokens.device
        spe = self.spe.expand(batch, -1, -1) + self.modality_embed.weight[MODALITIES.index('spe')]
        x = torch.cat([spe] + self._embed(segments), dim=1)
        mask = build_attention_mask(segments, batch, device)
        if extra_mask is not None:
            mask = mask & extra_mask
        # <SPE> takes the first segment's attribute.
        attributes, attribute_positions, keys = self._attribute_table(
            [(segments[0], 1)] + [(s, s.tokens.shape[1]) for s in segments], device)
        cache = DecoderCache([], [], torch.cat([torch.ones(batch, 1, dtype=torch.bool,
                                                           device=device),
                                                _valid(segments, batch, device)], dim=1)) \
            if return_cache else None
        for layer in self.layers:
            x, (k, v) = layer(x, mask, attributes, attribute_positions,
                              merged=cache.merged if cache is not None else None,
                              attribute_keys=keys)
            if cache is not None:
                cache.key_buffers.append(k)
                cache.value_buffers.append(v)
        outputs, start = [], 1
        for seg in segments:
            outputs.append(x[:, start:start + seg.tokens.shape[1]])
            start += seg.tokens.shape[1]
        return DecoderOutput(spe=x[:, 0], segments=outputs, hidden=x, cache=cache)

    def extend(self, cache: DecoderCache, segments: list[Segment], mask: Tensor | None = None,
               keep: int | None = None) -> tuple[list[Tensor], DecoderCache]:
        """Decode NEW positions after those in ``cache``, without recomputing the cached ones.

        By default each new position attends to every valid cached position and to the new
        positions up to itself (autoregressive continuation); ``mask`` [B, L_new, N + L_new]
        replaces that rule (it is still ANDed with padding).  The first ``keep`` new positions
        (default: all) are appended to the returned cache; the rest are queries only (e.g. the
        prediction stream of captioning, which no later position may see).  The cache's
        buffers are written in place: continue from the returned cache.

        Returns:
            (outputs per new segment, the extended cache).

        Examples:
            >>> dec = UnifiedDecoder(embed_dims=32, num_heads=4, ffn_dims=64, depth=2).eval()
            >>> prefix = dec([Segment(torch.randn(2, 5, 32))], return_cache=True).cache
            >>> (out,), cache = dec.extend(prefix, [Segment(torch.randn(2, 1, 32),
            ...                                             modality='text', causal=True)])
            >>> out.shape, len(cache)
            (torch.Size([2, 1, 32]), 7)
        """
        if not segments:
            raise ValueError('extend needs at least one new segment')
        batch = segments[0].tokens.shape[0]
        device = segments[0].tokens.device
        x = torch.cat(self._embed(segments), dim=1)
        new = x.shape[1]
        new_valid = _valid(segments, batch, device)
        key_valid = torch.cat([cache.valid, new_valid], dim=1)[:, None, :]
        if mask is None:
            mask = torch.cat([torch.ones(batch, new, len(cache), dtype=torch.bool, device=device),
                              torch.ones(new, new, dtype=torch.bool, device=device).tril()
                              .expand(batch, new, new)], dim=2)
        mask = mask & key_valid
        attributes, attribute_positions, keys = self._attribute_table(
            [(s, s.tokens.shape[1]) for s in segments], device)
        keep = new if keep is None else keep
        length = len(cache)
        cache.reserve(new)  # the positions after ``keep`` are written too, then left behind
        for i, layer in enumerate(self.layers):
            x, _ = layer(x, mask, attributes, attribute_positions,
                         past=(cache.key_buffers[i], cache.value_buffers[i], length),
                         merged=cache.merged, attribute_keys=keys)
        outputs, start = [], 0
        for seg in segments:
            outputs.append(x[:, start:start + seg.tokens.shape[1]])
            start += seg.tokens.shape[1]
        return outputs, DecoderCache(cache.key_buffers, cache.value_buffers,
                                     torch.cat([cache.valid, new_valid[:, :keep]], dim=1),
                                     cache.merged, cache.rows, cache.split)


__all__ = ['ATTRIBUTE_DIM', 'DecoderCache', 'DecoderOutput', 'Segment', 'UnifiedDecoder', 'build_attention_mask']
