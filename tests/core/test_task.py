"""The Task contract's defaults: a new task's predictions reach the inference API unedited."""

import pickle

import torch
from mmengine.structures import BaseDataElement

from up2core.task import Task


class CountingTask(Task):
    """A task the core has never heard of, with prediction fields of its own."""

    def loss(self, model, inputs, data_samples):
        return {}

    def predict(self, model, inputs, data_samples):
        for sample in data_samples:
            sample.pred_count = 3
            sample.pred_count_scores = torch.tensor([0.1, 0.2, 0.6, 0.1])
        return data_samples


def test_default_result_takes_every_pred_field_as_plain_values():
    task = CountingTask()
    (sample,) = task.predict(None, None, [BaseDataElement(metainfo=dict(task='counting'),
                                                          gt_label=1)])
    result = task.to_result(sample)
    assert result['count'] == 3
    assert result['count_scores'] == torch.tensor([0.1, 0.2, 0.6, 0.1]).tolist()
    assert set(result) == {'count', 'count_scores'}  # gt and metainfo stay out
    lines = task.format_result(result)
    assert sorted(lines) == sorted(['  count: 3', f"  count_scores: {result['count_scores']}"])


class _Weights(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))


def test_cached_candidates_compute_in_training_cache_in_eval_until_the_weights_change():
    task, model, calls = CountingTask(), _Weights(), []

    def compute():
        calls.append(1)
        return model.w * len(calls)

    task.train()
    task.cached_candidates(model, 'k', compute)
    task.cached_candidates(model, 'k', compute)
    assert len(calls) == 2  # training: every call
    task.eval()
    first = task.cached_candidates(model, 'k', compute)
    assert task.cached_candidates(model, 'k', compute) is first and len(calls) == 3
    task.cached_candidates(model, 'other', compute)
    assert len(calls) == 4  # another candidate set is cached beside it
    with torch.no_grad():
        model.w.add_(1.0)  # an optimiser step or a checkpoint load
    assert task.cached_candidates(model, 'k', compute) is not first and len(calls) == 5
    task.clear_cache()
    task.cached_candidates(model, 'k', compute)
    assert len(calls) == 6
    other = _Weights()  # another model whose weights have the same version count
    with torch.no_grad():
        while other.w._version < model.w._version:
            other.w.add_(0.0)
    assert other.w._version == model.w._version
    task.cached_candidates(other, 'k', compute)
    assert len(calls) == 7  # its features are its own
    task.cached_candidates(model, 'k', compute)
    assert len(calls) == 8  # and the first model's are computed again, with its weights
    assert pickle.loads(pickle.dumps(task)) is not None  # the cache holds no model reference
