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


def _group_loop(groups, weights, seed=0):
    """An UnmixedTrainLoop's drawing state without a runner (nothing is trained)."""
    from types import SimpleNamespace

    from up2core.engine.loops import UnmixedTrainLoop, _check_groups

    loop = object.__new__(UnmixedTrainLoop)
    loop._runner = SimpleNamespace(seed=seed)
    loop.mode, loop.tasks = 'unmixed', list(weights)
    loop.groups = _check_groups(groups, loop.tasks, weights)
    loop.sampling_ratios = {t: g['share'] * g['ratios'][t] for g in loop.groups.values()
                            for t in g['tasks']}
    return loop


def test_groups_draw_their_share_of_the_steps_and_their_own_kind_of_step():
    """``groups``: the user's tasks on 3/4 of the steps (both, mixed), the replayed ones on 1/4
    (one of them per step, by their weights); a plan is a function of (seed, step)."""
    weights = {'detection': 1.0, 'segmentation': 1.0, 'replay_a': 3.0, 'replay_b': 1.0}
    groups = {'yours': dict(tasks=['detection', 'segmentation'], weight=3, mode='mixed'),
              'replay': dict(tasks=['replay_a', 'replay_b'], weight=1, mode='unmixed')}
    loop = _group_loop(groups, weights)
    plans = [loop.plan_at(i) for i in range(4000)]
    yours = [p for p in plans if p[0] == 'yours']
    assert all(p[1] == 'mixed' and p[2] == {'detection': 0.5, 'segmentation': 0.5} for p in yours)
    assert abs(len(yours) / len(plans) - 0.75) < 0.03
    replayed = [next(iter(p[2])) for p in plans if p[0] == 'replay']
    assert all(p[1] == 'unmixed' and len(p[2]) == 1 for p in plans if p[0] == 'replay')
    assert abs(replayed.count('replay_a') / len(replayed) - 0.75) < 0.05
    assert loop.sampling_ratios['replay_a'] == pytest.approx(0.25 * 0.75)
    assert [loop.plan_at(i) for i in range(50)] == plans[:50]
    assert [_group_loop(groups, weights, seed=1).plan_at(i) for i in range(50)] != plans[:50]


@pytest.mark.parametrize('groups, message', [
    ({'a': dict(tasks=['detection'])}, r"in none \['captioning'\]"),
    ({'a': dict(tasks=['detection', 'captioning']), 'b': dict(tasks=['captioning'])},
     r"in two groups \['captioning'\]"),
    ({'a': dict(tasks=['detection', 'captioning'], mode='fast')}, "a mode among"),
    ({'a': dict(tasks=['detection', 'captioninng'])}, r"unknown: \['captioninng'\]")])
def test_groups_that_do_not_cover_every_task_once_are_refused(groups, message):
    with pytest.raises(ValueError, match=message):
        _group_loop(groups, {'detection': 1.0, 'captioning': 1.0})
