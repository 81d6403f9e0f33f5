"""The multi-task evaluation loop refuses metrics that would be silently truncated."""

import pytest
from mmengine.evaluator import BaseMetric, Evaluator

from up2core.engine.loops import MetricResultsError, MultiTaskValLoop


class PhraseMetric(BaseMetric):
    """Appends one result per phrase instead of one per sample (the mistake)."""

    def __init__(self, per_sample: bool):
        super().__init__()
        self.per_sample = per_sample

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            if self.per_sample:
                self.results.append(sample['hits'])
            else:
                self.results.extend(sample['hits'])

    def compute_metrics(self, results):
        hits = [h for r in results for h in (r if isinstance(r, list) else [r])]
        return {'acc': 100.0 * sum(hits) / len(hits), 'n': len(hits)}


def _loop(metric):
    loop = object.__new__(MultiTaskValLoop)
    loop.evaluators = {'grounding': Evaluator([metric])}
    return loop


def test_one_result_per_sample_is_evaluated_whole():
    loop = _loop(PhraseMetric(per_sample=True))
    samples = [{'hits': [True, False, True]}, {'hits': [False]}]
    loop.evaluators['grounding'].process(samples)
    assert loop._evaluate('grounding', processed=2, size=2) == {'acc': 50.0, 'n': 4}


def test_more_results_than_samples_is_an_error_instead_of_a_cut_list():
    loop = _loop(PhraseMetric(per_sample=False))
    loop.evaluators['grounding'].process([{'hits': [True, False, True]}, {'hits': [False]}])
    with pytest.raises(MetricResultsError, match=r"metric PhraseMetric of task 'grounding' "
                       r'holds 4 results after 2 predicted samples .*exactly one result per '
                       r'data sample'):
        loop._evaluate('grounding', processed=2, size=2)
