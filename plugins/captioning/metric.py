"""BLEU-1..4, CIDEr-D, ROUGE-L (and METEOR) of generated captions, with pycocoevalcap's scorers.

The scorers are called one by one: pycocoevalcap's ``COCOEvalCap`` wrapper also runs SPICE, which
downloads a model at first use.  Captions are tokenised first, as the COCO caption evaluation
does:

* ``tokenizer='simple'`` (default): pure Python, no Java, written to give what the PTB
  tokenizer gives on captions: lower case, clitics split, punctuation dropped, brackets kept
  (tested against it on a set of captions where Java exists).
* ``tokenizer='ptb'``: pycocoevalcap's ``PTBTokenizer`` (Stanford CoreNLP; needs ``java``), as
  in the COCO caption evaluation.

METEOR (``meteor=True``) also needs Java.  Scores are reported x100, as papers do (a CIDEr of
116.9 is pycocoevalcap's 1.169).  CIDEr's document frequencies come from the evaluated split's
references, so CIDEr of the same captions differs from split to split.
"""

from __future__ import annotations

import re
import shutil

from mmengine.evaluator import BaseMetric

# Punctuation that PTB tokenisation + pycocoevalcap's clean-up removes; brackets it keeps, as
# PTB spells them (lower-cased).
_DROPPED = {"'", '"', '`', "''", '``', '.', '?', '!', ',', ':', ';', '-', '--', '...'}
_BRACKETS = {'(': '-lrb-', ')': '-rrb-', '[': '-lsb-', ']': '-rsb-', '{': '-lcb-', '}': '-rcb-'}
_CLITIC = re.compile(r"(?<=[a-z0-9])(n't|'s|'re|'ve|'ll|'d|'m)\b")
_TOKEN = re.compile(r"n't|'[a-z]+|[a-z0-9]+(?:[-./'][a-z0-9]+)*|\.\.\.|--|\S")


def simple_tokenize(text: str) -> str:
    """PTB-like tokens of a caption, space-separated: lower case, clitics split (``is n't``,
    ``dog 's``), hyphenated words and decimals kept whole, brackets as ``-lrb-`` etc., other
    punctuation dropped.

    Examples:
        >>> simple_tokenize('A dog\'s toy (two-year-old), 3.5 apples.')
        "a dog 's toy -lrb- two-year-old -rrb- 3.5 apples"
    """
    text = _CLITIC.sub(r' \1', text.lower().replace('\u2019', "'"))
    words = (_BRACKETS.get(w, w) for w in _TOKEN.findall(text))
    return ' '.join(w for w in words if w not in _DROPPED)


def tokenize_captions(captions: dict, tokenizer: str = 'simple') -> dict:
    """``{image_id: [caption, ...]}`` -> the same with each caption tokenised."""
    if tokenizer == 'simple':
        return {key: [simple_tokenize(c) for c in texts] for key, texts in captions.items()}
    if tokenizer == 'ptb':
        if shutil.which('java') is None:
            raise RuntimeError("CaptionMetric(tokenizer='ptb') runs Stanford CoreNLP, which needs "
                               "java on the PATH; install a JRE or use tokenizer='simple'")
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({key: [{'caption': c} for c in texts]
                                        for key, texts in captions.items()})
    raise ValueError(f"unknown caption tokenizer '{tokenizer}'; use 'simple' or 'ptb'")


def caption_scores(predictions: dict, references: dict, meteor: bool = False) -> dict:
    """pycocoevalcap's scores (0..1 scale) of tokenised ``{id: [caption]}`` predictions against
    ``{id: [caption, ...]}`` references: keys BLEU-1..4, CIDEr, ROUGE-L (and METEOR)."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        from up2core.errors import MissingExtraError

        raise MissingExtraError.for_module('pycocoevalcap', 'pretrained',
                                           'the captioning metric') from None

    scores = {}
    bleu, _ = Bleu(4).compute_score(references, predictions, verbose=0)
    for n, value in enumerate(bleu, start=1):
        scores[f'BLEU-{n}'] = value
    scores['CIDEr'], _ = Cider().compute_score(references, predictions)
    scores['ROUGE-L'], _ = Rouge().compute_score(references, predictions)
    if meteor:
        if shutil.which('java') is None:
            raise RuntimeError('METEOR needs java on the PATH; install a JRE or set '
                               'meteor=False')
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()  # a Java subprocess, stopped when the scorer is collected
        scores['METEOR'], _ = scorer.compute_score(references, predictions)
        del scorer
    return {key: float(value) for key, value in scores.items()}


class CaptionMetric(BaseMetric):
    """Caption quality of ``pred_caption`` against the sample's reference ``texts``.

    Args:
        tokenizer: 'simple' (no Java) or 'ptb' (see the module doc).
        meteor: also compute METEOR (needs Java).

    Keys (x100): ``BLEU-1`` .. ``BLEU-4``, ``CIDEr``, ``ROUGE-L`` (, ``METEOR``).

    Examples:
        >>> val_evaluator = dict(captioning=dict(type='CaptionMetric'))
    """

    default_prefix = ''

    def __init__(self, tokenizer: str = 'simple', meteor: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if tokenizer not in ('simple', 'ptb'):
            raise ValueError(f"unknown caption tokenizer '{tokenizer}'; use 'simple' or 'ptb'")
        self.tokenizer, self.meteor = tokenizer, meteor

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            self.results.append((sample['pred_caption'], list(sample['texts'])))

    def compute_metrics(self, results) -> dict[str, float]:
        # Keys are result positions: an image listed twice (several ranks) still counts once each.
        predictions = tokenize_captions({i: [p] for i, (p, _) in enumerate(results)},
                                        self.tokenizer)
        references = tokenize_captions({i: refs for i, (_, refs) in enumerate(results)},
                                       self.tokenizer)
        # BLEU and CIDEr need one non-empty hypothesis per image; an empty caption scores 0.
        predictions = {i: [p if p.strip() else '<empty>' for p in texts]
                       for i, texts in predictions.items()}
        scores = caption_scores(predictions, references, meteor=self.meteor)
        # CIDEr first: a metric's first key is its headline (what a data card shows)
        ordered = sorted(scores, key=lambda key: key != 'CIDEr')
        return {key: scores[key] * 100 for key in ordered}
