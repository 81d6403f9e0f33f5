"""Metrics the core offers to every task (importing this package registers them in METRICS)."""

from up2core.evaluation.coco import GroupedCocoMetric

__all__ = ['GroupedCocoMetric']
