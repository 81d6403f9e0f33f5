"""Whole words: which candidate tokens may come next so that a caption is made of known words.

Captioning chooses one *sub-word* token at a time (WordPiece for BERT-like encoders, BPE for
RoBERTa-like ones).  Unconstrained, a model that is unsure between "hexagon" (``hex ##ago ##n``)
and "pentagon" (``pentagon``) can emit ``pentagon ##gon``, or a word stem with the wrong ending:
words no caption of the training set holds ("pentagongon", "hexaxagon").  :class:`WordSet` keeps
the words of the training captions as a trie of token ids and, at every step, bans the tokens that
would leave it:

* inside a word, only the tokens that continue it toward some known word;
* after a complete word (or at the start), any token that starts a known word, or the end token;
* optionally (``no_repeat=True``), not the word just written again ("a small small").

A decoded caption is then a sequence of training words, whatever the model's weights; what the
model still decides is which words, in which order.  Words are found with the fast tokenizer's
``word_ids`` (so the rule is the tokenizer's own, WordPiece or BPE alike), and a sequence of ids
is cut into words by walking the trie, continuing the current word whenever the token continues it.

The word list travels with the weights (the task's ``word_ids`` buffer: every word's ids, each
followed by ``-1``), so a checkpoint decodes the same without its caption file.

Examples:
    >>> words = WordSet([(7,), (8,), (5, 9), (5, 9, 11)])  # "a", "big", "hex ##agon", "...##s"
    >>> words.next_tokens([5])              # inside "hex...": only what continues it
    {9}
    >>> words.next_tokens([7]) == {5, 8, END}   # after "a": a new word or the end, not "a"
    True
    >>> words.next_tokens([5, 9]) == {11, 5, 7, 8, END}  # "hexagon" may grow or end
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

#: what :meth:`WordSet.next_tokens` puts for "the caption may end here"
END = None


class WordSet:
    """The trie of known words (each a tuple of token ids).

    Args:
        words: the words, as token id sequences (duplicates are fine).
        no_repeat: ban writing the word just written again.
    """

    def __init__(self, words: Iterable[Sequence[int]], no_repeat: bool = True) -> None:
        self.children: dict[tuple[int, ...], set[int]] = {}
        self.complete: set[tuple[int, ...]] = set()
        for word in words:
            word = tuple(int(t) for t in word)
            if not word:
                continue
            self.complete.add(word)
            for i in range(len(word)):
                self.children.setdefault(word[:i], set()).add(word[i])
        self.starts = self.children.get((), set())
        self.no_repeat = no_repeat
        self._masks: dict[tuple, Tensor] = {}

    def __len__(self) -> int:
        return len(self.complete)

    # ------------------------------------------------------------------ saving

    def to_tensor(self) -> Tensor:
        """Every word's ids followed by ``-1``, one 1-D tensor (the checkpoint's buffer)."""
        flat = []
        for word in sorted(self.complete):
            flat.extend(word)
            flat.append(-1)
        return torch.tensor(flat, dtype=torch.long)

    @classmethod
    def from_tensor(cls, flat: Tensor, no_repeat: bool = True) -> WordSet:
        words, word = [], []
        for t in flat.tolist():
            if t < 0:
                words.append(tuple(word))
                word = []
            else:
                word.append(t)
        return cls(words, no_repeat=no_repeat)

    @classmethod
    def from_texts(cls, tokenizer, texts: Sequence[str], keep: set[int] | None = None,
                   no_repeat: bool = True) -> WordSet:
        """The words of ``texts`` as ``tokenizer`` splits them (a fast tokenizer's
        ``word_ids``); with ``keep``, only words whose every token is in it (the candidates)."""
        words = set()
        for chunk in range(0, len(texts), 1024):
            encoded = tokenizer(list(texts[chunk:chunk + 1024]), add_special_tokens=False)
            for row, ids in enumerate(encoded['input_ids']):
                groups: dict[int, list[int]] = {}
                for token, word in zip(ids, encoded.word_ids(row)):
                    if word is not None:
                        groups.setdefault(word, []).append(token)
                words.update(tuple(g) for g in groups.values())
        if keep is not None:
            words = {w for w in words if all(t in keep for t in w)}
        return cls(words, no_repeat=no_repeat)

    # ------------------------------------------------------------------ the rule

    def split(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(previous word, current word)`` at the end of ``tokens`` (the caption so far,
        without the start token): the current word grows while a token continues it."""
        previous: tuple[int, ...] = ()
        current: tuple[int, ...] = ()
        for token in tokens:
            if current and token in self.children.get(current, ()):
                current += (token,)
            else:
                previous, current = current, (token,)
        return previous, current

    def next_tokens(self, tokens: Sequence[int]) -> set[int | None]:
        """The tokens that may follow ``tokens`` (``None``: the end); the word rule of the
        module doc."""
        previous, current = self.split(tokens)
        return self._allowed(previous, current)

    def _allowed(self, previous: tuple[int, ...], current: tuple[int, ...]) -> set:
        continuations = self.children.get(current, set()) if current else set()
        allowed: set = set(continuations)
        if not current or current in self.complete:
            allowed |= self.starts
            allowed.add(END)
        if self.no_repeat:
            repeats = {t for t in allowed - {END}
                       if self._repeats(previous, current, t, t in continuations)}
            if allowed - repeats:  # never a dead end
                allowed -= repeats
        return allowed

    def _repeats(self, previous: tuple, current: tuple, token: int, continues: bool) -> bool:
        """Whether ``token`` finishes a word equal to the word before it: a complete word that
        cannot grow further (so it ends here)."""
        word, before = (current + (token,), previous) if continues else ((token,), current)
        return word == before and word in self.complete and word not in self.children

    def banned_columns(self, tokens: Tensor, vocab: Tensor, end: int) -> Tensor:
        """[N, V] True where a candidate column may not come next, for every row of ``tokens``
        ([N, t], the start token first; ``vocab`` [V] the token id of each column, ``end`` the
        end token's column).  Rows with the same last two words share one mask."""
        rows = []
        for row in tokens[:, 1:].tolist():
            words = self.split(row)
            key = (words, len(vocab), end)
            mask = self._masks.get(key)
            if mask is None:
                allowed = self._allowed(*words)
                ids = torch.tensor(sorted(t for t in allowed if t is not END), dtype=torch.long)
                mask = ~torch.isin(vocab.cpu(), ids)
                if END in allowed:
                    mask[end] = False
                self._masks[key] = mask
            rows.append(mask)
        return torch.stack(rows).to(tokens.device)
