"""Top-k accuracy."""

from __future__ import annotations

from mmengine.evaluator import BaseMetric


class TopKAccuracy(BaseMetric):
    """Percentage of samples whose label is among the top-k predictions, for each k.

    Expects data samples with ``gt_label`` and ``pred_topk_labels`` (best first).
    """

    default_prefix = ''

    def __init__(self, topk: tuple[int, ...] = (1, 5), **kwargs) -> None:
        super().__init__(**kwargs)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            ranked = [int(x) for x in sample['pred_topk_labels']]
            self.results.append((int(sample['gt_label']), ranked))

    def compute_metrics(self, results) -> dict[str, float]:
        metrics = {}
        for k in self.topk:
            hits = sum(label in ranked[:k] for label, ranked in results)
            metrics[f'top{k}'] = 100.0 * hits / len(results)
        return metrics
