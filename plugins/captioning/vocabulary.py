"""Which tokenizer tokens are captioning's candidates.

Every generated token is chosen by the unified likelihood among *candidates*: vocabulary entries,
each encoded through the text encoder and the shared decoder like any other target.  Encoding the
whole tokenizer (30k entries for BERT, 50k for RoBERTa) every training step is the costliest part
of captioning, so the candidate set is configurable:

* ``'full'``: every token of the tokenizer except its special tokens (padding, ``[CLS]``,
  ``[MASK]``...), plus the end token and the unknown token;
* ``dict(ann_file=..., split=None)``: a *restricted* vocabulary, the tokens that occur in the
  training captions of a COCO captions or Karpathy json (plus the end and unknown tokens);
* ``dict(texts=[...])``: the tokens of the given texts (plus the end and unknown tokens).

Under a restricted vocabulary a token that never occurs in the training captions is not a
candidate, so it is never predicted; if a training caption still holds one (a vocabulary built
from another file), its target is the unknown token.  The unknown token is a training target only:
decoding never emits it.

A restricted vocabulary also keeps its *words* (:mod:`up2_captioning.words`): decoding then
chooses only token sequences that spell words of those captions.
"""

from __future__ import annotations

from pathlib import Path

from up2core.data.captions import read_caption_file


def special_ids(tokenizer) -> tuple[int, int, int, int]:
    """``(start, end, mask, unknown)`` token ids of a transformers tokenizer.

    The start and end tokens are those the tokenizer puts around a single sentence (``[CLS]`` /
    ``[SEP]`` for BERT, ``<s>`` / ``</s>`` for RoBERTa).
    """
    wrapped = tokenizer('')['input_ids']
    if len(wrapped) != 2:
        raise ValueError(f'captioning needs a tokenizer that wraps a sentence in a start and an '
                         f'end token; {type(tokenizer).__name__} adds {wrapped}')
    if tokenizer.mask_token_id is None or tokenizer.unk_token_id is None:
        raise ValueError(f'captioning needs a tokenizer with a mask and an unknown token; '
                         f'{type(tokenizer).__name__} has none')
    return wrapped[0], wrapped[1], tokenizer.mask_token_id, tokenizer.unk_token_id


def vocabulary_texts(spec: str | dict) -> list[str] | None:
    """The texts a restricted vocabulary is made of (``None`` for ``'full'``)."""
    if spec == 'full':
        return None
    if not isinstance(spec, dict) or not ({'ann_file', 'texts'} & set(spec)):
        raise ValueError(f"captioning vocabulary must be 'full', dict(ann_file=..., "
                         f"split=None) or dict(texts=[...]), got {spec!r}")
    if 'texts' in spec:
        return list(spec['texts'])
    ann_file = Path(spec['ann_file'])
    if not ann_file.is_file():
        raise FileNotFoundError(
            f"captioning vocabulary: caption file '{ann_file}' not found "
            f"(vocabulary.ann_file; it is read once, when training starts, and the "
            f"vocabulary is then saved in every checkpoint)")
    return [t for _, _, captions in read_caption_file(ann_file, spec.get('split'))
            for t in captions]


def vocabulary_ids(tokenizer, spec: str | dict) -> list[int]:
    """The candidate token ids (sorted) that ``spec`` describes (see the module doc)."""
    _, end, _, unknown = special_ids(tokenizer)
    texts = vocabulary_texts(spec)
    if texts is None:
        excluded = set(tokenizer.all_special_ids) - {end, unknown}
        return sorted(i for i in range(len(tokenizer)) if i not in excluded)
    ids = {end, unknown}
    for chunk in range(0, len(texts), 1024):
        for row in tokenizer(texts[chunk:chunk + 1024], add_special_tokens=False)['input_ids']:
            ids.update(row)
    return sorted(ids)
