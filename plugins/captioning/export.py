"""Captioning's exported graph: the next-token log-probabilities at every position, in one pass.

The decoding loop (greedy or beam search, and its key/value cache) stays outside the graph. The
graph takes the images and ``tokens`` ``[N, L]`` (``L`` = the task's ``max_length``: the start
token, the caption so far, then anything) and gives ``log_probs`` ``[N, L, V]``: at position
``t``, the log-probability of each vocabulary candidate as the next token, given
``tokens[:, :t + 1]`` only.  That holds whatever comes after: the two-stream mask lets the
prediction at ``t`` see the causal tokens ``0..t`` and itself, and nothing before it (the image,
``<SPE>``) sees the caption.  So one graph serves every step of a search (pad the tokens so far
to ``L``, read position ``t``) and scores a whole given caption at once (teacher forcing).

:func:`caption_with_graph` runs the plugin's own greedy search over an exported file: the same
tokens as the eager model's greedy decoding (``tests/plugins/captioning/test_export.py``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor
from up2_captioning.decoding import Generated, greedy_search
from up2_captioning.words import WordSet

from up2core.export.head import ExportHead


class CaptionStepsHead(ExportHead):
    """``log_probs`` ``[N, L, V]`` for ``tokens`` ``[N, L]`` (module doc).

    Args:
        task: the :class:`~up2_captioning.task.CaptioningTask`.
        candidates: ``[V, C]`` the vocabulary's candidate features, baked into the graph.
        start_id: the start token's id (the example input is all start tokens).
        length: ``L``, the graph's token length (the task's ``max_length``).
        metadata: written beside the exported file.
    """

    input_names = ('tokens',)
    output_names = ('log_probs',)

    def __init__(self, task, candidates: Tensor, start_id: int, length: int,
                 metadata: dict[str, Any]) -> None:
        super().__init__(metadata)
        self._streams = task._streams
        self.group = task.likelihood_group
        self.start_id, self.length = start_id, length
        self.register_buffer('candidates', candidates.detach().clone())

    def example_inputs(self, batch: int) -> tuple[Tensor]:
        return (torch.full((batch, self.length), self.start_id, dtype=torch.long),)

    def forward(self, model, inputs: Tensor, tokens: Tensor) -> tuple[Tensor]:
        from up2_captioning.task import two_stream_mask

        image = model.image_segments(model.encode_image(inputs), generative=True)
        prefix = sum(segment.tokens.shape[1] for segment in image)
        batch, length = tokens.shape
        mask = two_stream_mask(prefix, length, batch, tokens.device)
        out = model.decode(image + self._streams(model, tokens), extra_mask=mask).segments[-1]
        logits = model.likelihood.logits(out.flatten(0, 1), self.candidates, self.group)
        return (logits.log_softmax(-1).view(batch, length, -1),)


def caption_with_graph(graph, pixels: np.ndarray, min_length: int | None = None
                       ) -> Generated:
    """Greedy captions of ``pixels`` (``[N, 3, H, W]`` RGB) from an exported captioning graph
    (an :class:`~up2core.export.graph.ExportedGraph`), with the task's search rules (no unknown
    token, the end token only after ``min_length`` tokens, whole words when the metadata has
    ``word_ids``: :mod:`up2_captioning.words`).  Returns token ids; the tokenizer's
    ``decode`` (or the ``tokens`` strings in the graph's metadata) turns them into text."""
    meta = graph.info['metadata']
    length = int(meta['max_length'])
    vocab = torch.tensor(meta['vocab_ids'])
    batch = pixels.shape[0]

    def step(tokens: Tensor, state):
        padded = np.full((batch, length), meta['end_id'], dtype=np.int64)
        padded[:, :tokens.shape[1]] = tokens.numpy()
        log_probs = graph(pixels, tokens=padded)['log_probs'][:, tokens.shape[1] - 1]
        return torch.from_numpy(np.ascontiguousarray(log_probs)), state

    start = torch.full((batch, 1), int(meta['start_id']), dtype=torch.long)
    end = int(meta['vocab_ids'].index(meta['end_id']))
    constraint = None
    if meta.get('word_ids'):
        words = WordSet.from_tensor(torch.tensor(meta['word_ids']),
                                    no_repeat=bool(meta.get('no_repeat_words', True)))
        constraint = partial(words.banned_columns, vocab=vocab, end=end)
    return greedy_search(step, None, start, vocab, end, max_length=length,
                         min_length=meta['min_length'] if min_length is None else min_length,
                         length_penalty=meta['length_penalty'],
                         banned=vocab == int(meta['unknown_id']), constraint=constraint)


__all__ = ['CaptionStepsHead', 'caption_with_graph']
