"""Exact-count accuracy and mean absolute error."""

from __future__ import annotations

from mmengine.evaluator import BaseMetric


class CountAccuracy(BaseMetric):
    """Expects data samples with ``pred_count`` and ``gt_count``."""

    default_prefix = 'counting'

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            self.results.append((int(sample['pred_count']), int(sample['gt_count'])))

    def compute_metrics(self, results) -> dict[str, float]:
        exact = sum(p == g for p, g in results) / len(results)
        mae = sum(abs(p - g) for p, g in results) / len(results)
        return {'accuracy': 100.0 * exact, 'mae': mae}
