"""Exact-count accuracy and mean absolute error."""

from __future__ import annotations

from mmengine.evaluator import BaseMetric


class CountAccuracy(BaseMetric):
    """Reads ``pred_count`` and ``gt_count`` of every predicted sample (UP2's loops hand
    metrics each sample as a plain dict).

    Keys: ``accuracy`` (percent of exact counts) and ``mae``.  In a UP2 config the evaluator of
    task ``counting`` reports them as ``counting/accuracy`` and ``counting/mae``: UP2's
    multi-task loops own the ``task/`` prefix, so a metric needs no ``default_prefix``.
    """

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            self.results.append((int(sample['pred_count']), int(sample['gt_count'])))

    def compute_metrics(self, results) -> dict[str, float]:
        exact = sum(p == g for p, g in results) / len(results)
        mae = sum(abs(p - g) for p, g in results) / len(results)
        return {'accuracy': 100.0 * exact, 'mae': mae}
