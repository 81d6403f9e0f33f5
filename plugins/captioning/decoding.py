"""Greedy and beam-search decoding over a step function, batched over images.

Both searches see the model only through ``step(tokens, state) -> (log_probs, state)``: given
every sequence's tokens so far ([N, t] token ids, the start token first) and whatever the step
keeps between calls (a key/value cache, or nothing for full recomputation), it returns
log-probabilities over the candidate vocabulary ([N, V]).  ``reorder(state, rows)`` selects and
repeats batch rows (beams).  Columns index ``vocab`` (token ids); ``end`` is the column of the end
token.

Scores: a caption's score is its summed token log-probability (end token included) divided by
``length ** length_penalty`` (``length_penalty=0``: the plain sum).  A finished sequence keeps
its score and is padded with the end token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Step = Callable[[Tensor, object], tuple[Tensor, object]]
Reorder = Callable[[object, Tensor], object]
Constraint = Callable[[Tensor], Tensor]


@dataclass
class Generated:
    """Per image: ``tokens`` (ids, without the start token and without anything after the
    end token, which is also dropped), ``scores`` (length-normalised log-likelihood)."""

    tokens: list[list[int]]
    scores: list[float]


def _finish(tokens: Tensor, log_prob: Tensor, lengths: Tensor, end_id: int,
            length_penalty: float) -> Generated:
    scores = log_prob / lengths.clamp(min=1).float() ** length_penalty
    out = []
    for row in tokens[:, 1:].tolist():
        out.append(row[:row.index(end_id)] if end_id in row else row)
    return Generated(out, scores.tolist())


def _forbid(log_probs: Tensor, banned: Tensor | None, end: int, t: int, min_length: int,
            constraint: Constraint | None = None, tokens: Tensor | None = None) -> Tensor:
    if banned is not None:
        log_probs = log_probs.masked_fill(banned, float('-inf'))
    if constraint is not None:
        log_probs = log_probs.masked_fill(constraint(tokens), float('-inf'))
    if t < min_length:  # the end token may come only after min_length tokens
        log_probs = log_probs.clone()
        log_probs[:, end] = float('-inf')
    return log_probs


@torch.no_grad()
def greedy_search(step: Step, state, start_tokens: Tensor, vocab: Tensor, end: int,
                  max_length: int = 20, min_length: int = 1, length_penalty: float = 0.0,
                  banned: Tensor | None = None, constraint: Constraint | None = None
                  ) -> Generated:
    """The most likely token at every step, until the end token or ``max_length`` tokens.

    Args:
        start_tokens: [N, 1] the start token of each sequence.
        vocab: [V] the token id of each candidate column.
        end: the column of the end token.
        banned: [V] bool, columns never chosen (e.g. the unknown token).
        constraint: columns banned per sequence and step (the module doc).
    """
    tokens = start_tokens
    n = tokens.shape[0]
    log_prob = torch.zeros(n, device=tokens.device)
    lengths = torch.zeros(n, dtype=torch.long, device=tokens.device)
    finished = torch.zeros(n, dtype=torch.bool, device=tokens.device)
    for t in range(max_length):
        log_probs, state = step(tokens, state)
        log_probs = _forbid(log_probs, banned, end, t, min_length, constraint, tokens)
        # topk, not max: it breaks ties as beam_search does, so one beam is exactly greedy
        best, column = (v[:, 0] for v in log_probs.topk(1, dim=-1))
        column = column.masked_fill(finished, end)
        log_prob += best.masked_fill(finished, 0.0)
        lengths += (~finished).long()
        tokens = torch.cat([tokens, vocab[column][:, None]], dim=1)
        finished |= column == end
        if finished.all():
            break
    return _finish(tokens, log_prob, lengths, int(vocab[end]), length_penalty)


@torch.no_grad()
def beam_search(step: Step, reorder: Reorder, state, start_tokens: Tensor, vocab: Tensor,
                end: int, beam_size: int = 3, max_length: int = 20, min_length: int = 1,
                length_penalty: float = 0.0, banned: Tensor | None = None,
                constraint: Constraint | None = None) -> Generated:
    """Keep the ``beam_size`` best partial captions of each image (by summed log-probability);
    finished ones stay in the beam with their score; the best by normalised score wins.

    ``state`` is that of the N images (not yet repeated per beam).  ``beam_size=1`` chooses
    exactly what :func:`greedy_search` chooses.
    """
    n, k = start_tokens.shape[0], beam_size
    num_columns = vocab.shape[0]
    if k > num_columns:
        raise ValueError(f'beam_size={k} exceeds the {num_columns} candidate tokens')
    device = start_tokens.device
    rows = torch.arange(n, device=device).repeat_interleave(k)
    state = reorder(state, rows)
    tokens = start_tokens[rows]
    # Only the first beam of each image is live at first, so the k beams do not all start alike.
    scores = torch.full((n, k), float('-inf'), device=device)
    scores[:, 0] = 0.0
    lengths = torch.zeros(n * k, dtype=torch.long, device=device)
    finished = torch.zeros(n * k, dtype=torch.bool, device=device)
    for t in range(max_length):
        log_probs, state = step(tokens, state)
        log_probs = _forbid(log_probs, banned, end, t, min_length, constraint, tokens)
        # a finished beam continues with the end token at no cost, and only with it
        log_probs = log_probs.masked_fill(finished[:, None], float('-inf'))
        log_probs[finished, end] = 0.0
        total = (scores.view(-1, 1) + log_probs).view(n, k * num_columns)
        scores, flat = total.topk(k, dim=-1)
        beam, column = flat // num_columns, flat % num_columns
        chosen = (torch.arange(n, device=device)[:, None] * k + beam).view(-1)
        column = column.view(-1)
        lengths = lengths[chosen] + (~finished[chosen]).long()
        tokens = torch.cat([tokens[chosen], vocab[column][:, None]], dim=1)
        finished = finished[chosen] | (column == end)
        state = reorder(state, chosen)
        if finished.all():
            break
    normalised = scores.view(-1) / lengths.clamp(min=1).float() ** length_penalty
    best = normalised.view(n, k).argmax(dim=-1) + torch.arange(n, device=device) * k
    return _finish(tokens[best], scores.view(-1)[best], lengths[best], int(vocab[end]),
                   length_penalty)
