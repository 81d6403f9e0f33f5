import shutil

import pytest
from up2_captioning.metric import CaptionMetric, caption_scores, simple_tokenize

# Captions with what tokenisers disagree on: case, commas, clitics, hyphens, brackets, numbers.
CAPTIONS = [
    'A man riding a wave on top of a surfboard.',
    'four shapes from left to right: a large green pentagon, a small red circle.',
    'The top-left corner isn\'t "empty" (really)!',
    "A dog's toy; two-year-old kids...  3.5 apples",
    'There are 2 cats & a dog -- sleeping on a bed [a big one].',
]
PREDICTIONS = ['a man riding a wave on a surfboard', 'a large green pentagon and a red circle',
               'a corner', '', 'two cats and a dog sleeping on a bed']
REFERENCES = [
    ['A man riding a wave on top of a surfboard.', 'A surfer rides a big wave.'],
    ['four shapes from left to right: a large green pentagon, a small red circle.',
     'a large green pentagon at the left and a small red circle.'],
    ["The top-left corner isn't empty.", 'an empty corner'],
    ["A dog's toy on the floor.", 'a toy for a dog'],
    ['Two cats and a dog sleep on a bed.', 'There are 2 cats & a dog -- sleeping on a bed.'],
]


def _metric_result(**kwargs):
    metric = CaptionMetric(**kwargs)
    samples = [dict(pred_caption=p, texts=r) for p, r in zip(PREDICTIONS, REFERENCES)]
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_scores_equal_pycocoevalcaps_own_scorers():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    result = _metric_result()
    refs = {i: [simple_tokenize(r) for r in rs] for i, rs in enumerate(REFERENCES)}
    preds = {i: [simple_tokenize(p) or '<empty>'] for i, p in enumerate(PREDICTIONS)}
    bleu, _ = Bleu(4).compute_score(refs, preds, verbose=0)
    assert [result[f'BLEU-{n}'] for n in range(1, 5)] == pytest.approx([b * 100 for b in bleu])
    assert result['CIDEr'] == pytest.approx(Cider().compute_score(refs, preds)[0] * 100)
    assert result['ROUGE-L'] == pytest.approx(Rouge().compute_score(refs, preds)[0] * 100)
    assert 0 < result['BLEU-4'] < result['BLEU-1'] < 100 and result['CIDEr'] > 0
    assert set(result) == {'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'CIDEr', 'ROUGE-L'}


def test_a_caption_equal_to_its_references_scores_top_marks():
    refs = {i: [simple_tokenize(c)] for i, c in enumerate(CAPTIONS)}
    scores = caption_scores(refs, refs)
    assert scores['BLEU-1'] == pytest.approx(1.0, abs=1e-6)
    assert scores['ROUGE-L'] == pytest.approx(1.0)
    assert scores['CIDEr'] > 5  # CIDEr-D of an exact match: 10 x idf-weighted cosine


@pytest.mark.skipif(shutil.which('java') is None, reason='PTBTokenizer runs Java')
def test_simple_tokenizer_matches_the_ptb_tokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ptb = PTBTokenizer().tokenize({i: [{'caption': c}] for i, c in enumerate(CAPTIONS)})
    assert [simple_tokenize(c) for c in CAPTIONS] == [ptb[i][0] for i in range(len(CAPTIONS))]
    assert _metric_result(tokenizer='ptb') == pytest.approx(_metric_result(tokenizer='simple'))


def test_unknown_tokenizer_is_refused():
    with pytest.raises(ValueError, match="'simple' or 'ptb'"):
        CaptionMetric(tokenizer='nltk')


@pytest.mark.skipif(shutil.which('java') is None, reason='METEOR runs Java')
def test_meteor_equals_its_own_scorer_when_asked_for():
    from pycocoevalcap.meteor.meteor import Meteor

    result = _metric_result(meteor=True)
    refs = {i: [simple_tokenize(r) for r in rs] for i, rs in enumerate(REFERENCES)}
    preds = {i: [simple_tokenize(p) or '<empty>'] for i, p in enumerate(PREDICTIONS)}
    assert result['METEOR'] == pytest.approx(Meteor().compute_score(refs, preds)[0] * 100)
    assert 'METEOR' not in _metric_result()
