"""The searches on hand-made distributions whose best captions are known."""

import math

import pytest
import torch
from up2_captioning.decoding import beam_search, greedy_search

# Columns: 0 = end, 1 = 'a', 2 = 'b', 3 = 'c'; token ids are 10 + column; start token 5.
VOCAB = torch.tensor([10, 11, 12, 13])
START = 5


def tree_step(tokens, state):
    """First token: 'a' 0.5, 'b' 0.4, 'c' 0.1.  After 'a': anything 0.25.  After 'b': end 0.9.
    Greedy takes 'a' then a 0.25 token; the best caption is 'b' + end (0.36)."""
    rows = []
    for row in tokens.tolist():
        last = row[-1]
        if last == START:
            p = [0.0, 0.5, 0.4, 0.1]
        elif last == 11:
            p = [0.25, 0.25, 0.25, 0.25]
        elif last == 12:
            p = [0.9, 0.05, 0.03, 0.02]
        else:
            p = [0.97, 0.01, 0.01, 0.01]
        rows.append(p)
    return torch.tensor(rows).clamp_min(1e-12).log(), state


def reorder(state, rows):
    return state


def _start(n):
    return torch.full((n, 1), START)


def test_greedy_takes_the_locally_best_token():
    out = greedy_search(tree_step, None, _start(2), VOCAB, end=0, max_length=5)
    assert out.tokens[0][0] == 11
    assert out.tokens[0][:1] == [11] and len(out.tokens) == 2


def test_beam_search_finds_the_better_caption_that_greedy_misses():
    out = beam_search(tree_step, reorder, None, _start(2), VOCAB, end=0, beam_size=3,
                      max_length=5)
    assert out.tokens == [[12], [12]]
    assert out.scores[0] == pytest.approx(math.log(0.4 * 0.9))


def test_beam_of_one_is_greedy():
    greedy = greedy_search(tree_step, None, _start(3), VOCAB, end=0, max_length=6)
    beam = beam_search(tree_step, reorder, None, _start(3), VOCAB, end=0, beam_size=1,
                       max_length=6)
    assert beam.tokens == greedy.tokens and beam.scores == pytest.approx(greedy.scores)


def test_min_and_max_length_and_banned_tokens():
    out = greedy_search(tree_step, None, _start(1), VOCAB, end=0, max_length=3, min_length=3,
                        banned=torch.tensor([False, True, False, False]))
    # 'a' is banned, 'b' comes first; the end token may not come before 3 tokens; 3 at most
    assert out.tokens[0][0] == 12 and len(out.tokens[0]) == 3 and 11 not in out.tokens[0]
    beam = beam_search(tree_step, reorder, None, _start(1), VOCAB, end=0, beam_size=2,
                       max_length=2)
    assert len(beam.tokens[0]) <= 2


def test_length_penalty_normalises_the_score():
    plain = beam_search(tree_step, reorder, None, _start(1), VOCAB, end=0, beam_size=2,
                        max_length=5)
    normalised = beam_search(tree_step, reorder, None, _start(1), VOCAB, end=0, beam_size=2,
                             max_length=5, length_penalty=1.0)
    # 'b' + end: two tokens (the end token counts)
    assert normalised.scores[0] == pytest.approx(plain.scores[0] / 2)


def test_beam_larger_than_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match='beam_size=5'):
        beam_search(tree_step, reorder, None, _start(1), VOCAB, end=0, beam_size=5)
