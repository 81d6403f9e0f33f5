"""The Task contract's defaults: a new task's predictions reach the inference API unedited."""

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
