"""The multi-task loops: evaluation refuses metrics that would be silently truncated and shares
images within groups of tasks; training draws groups of tasks."""

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


class CountMetric(BaseMetric):
    """How many samples it was given."""

    def process(self, data_batch, data_samples):
        self.results.extend(1 for _ in data_samples)

    def compute_metrics(self, results):
        return {'n': len(results)}


class _Loader(list):
    """Batches, as a DataLoader yields them; ``dataset`` holds every sample."""

    @property
    def dataset(self):
        return [s for batch in self for s in batch['data_samples']]


class _Model:
    """Records which tasks each forward served."""

    def __init__(self):
        self.calls = []

    def eval(self):
        return self

    def data_preprocessor(self, batch, training):
        return dict(batch)

    def __call__(self, inputs, data_samples, mode):
        self.calls.append(sorted(data_samples))
        return dict(data_samples)

    def val_step(self, batch):
        self.calls.append([batch['data_samples'][0]])
        return batch['data_samples']


def _eval_loop(shared_images):
    from types import SimpleNamespace

    import torch

    from up2core.engine.loops import _image_groups, _TaskLoaders

    images = [torch.full((2, 3, 4, 4), float(i)) for i in range(3)]
    loaders = {task: _Loader(dict(inputs=batch, data_samples=[task, task]) for batch in images)
               for task in ('mine', 'replay_a', 'replay_b')}
    loop = object.__new__(MultiTaskValLoop)
    loop._runner = SimpleNamespace(model=_Model(), call_hook=lambda *a, **k: None)
    loop.shared_images = shared_images
    loop.groups = _image_groups(shared_images, list(loaders), 'val')
    loop.dataloader = _TaskLoaders(loaders)
    loop.evaluators = {task: Evaluator([CountMetric()]) for task in loaders}
    return loop


def test_a_group_of_tasks_shares_each_batch_and_the_others_run_their_own():
    loop = _eval_loop([['replay_a', 'replay_b']])
    metrics = loop.run()
    assert metrics == {'mine/n': 6, 'replay_a/n': 6, 'replay_b/n': 6}
    calls = loop._runner.model.calls
    assert calls == [['mine']] * 3 + [['replay_a', 'replay_b']] * 3  # one pass per batch
    every = _eval_loop(True)
    assert every.run() == metrics and every._runner.model.calls == [
        ['mine', 'replay_a', 'replay_b']] * 3
    each = _eval_loop(False)
    assert each.run() == metrics and len(each._runner.model.calls) == 9


@pytest.mark.parametrize('groups, message', [
    ([['replay_a', 'nope']], r"\['nope'\] are not tasks of the val_dataloader"),
    ([['replay_a'], ['replay_a', 'mine']], r"\['replay_a'\] stand in more than one group"),
    ('replay_a', 'give True, False or a list of groups')])
def test_groups_of_shared_images_name_what_is_wrong(groups, message):
    with pytest.raises(ValueError, match=message):
        _eval_loop(groups)
