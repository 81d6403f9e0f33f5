"""COCO box / mask AP (mmdet's ``CocoMetric``), plus AP over named groups of categories.

Open-vocabulary detection is judged by AP on the category names seen in training next to AP on
names never trained on.  :class:`GroupedCocoMetric` reports mmdet's metrics unchanged and, for
every group in ``category_groups``, pycocotools' AP with ``params.catIds`` restricted to the
group's categories (exactly what COCOeval computes for that subset of categories).
"""

from __future__ import annotations

import math
import os.path as osp
import tempfile

from mmdet.datasets.api_wrappers import COCOeval
from mmdet.evaluation.metrics import CocoMetric

from up2core.registry import METRICS


@METRICS.register_module()
class GroupedCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` + ``{metric}_mAP_{group}`` / ``{metric}_mAP_50_{group}`` keys;
    values COCOeval leaves undefined (its -1, e.g. ``mAP_l`` without large objects) are NaN.

    Args:
        category_groups: ``dict(seen=[names], novel=[names])``; a group with no ground truth in
            the split reports NaN (COCOeval's -1 is not an AP).
        **kwargs: ``CocoMetric``'s (``ann_file``, ``metric='bbox'`` or ``'segm'``, ...).

    Examples:
        >>> dict(type='GroupedCocoMetric', metric='bbox', ann_file='.../instances_val.json',
        ...      category_groups=dict(novel=['red star', 'blue circle']))
    """

    def __init__(self, category_groups: dict[str, list[str]] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.category_groups = dict(category_groups or {})

    def compute_metrics(self, results: list) -> dict[str, float]:
        # COCOeval writes -1 where a value is undefined (no ground truth in an area range):
        # reported as NaN, never as a number that looks like a score.
        metrics = {k: (math.nan if v == -1 else v)
                   for k, v in super().compute_metrics(results).items()}
        if not self.category_groups:
            return metrics
        _, preds = zip(*results)
        with tempfile.TemporaryDirectory() as tmp:
            files = self.results2json(preds, osp.join(tmp, 'results'))
            for metric in self.metrics:
                if metric not in files:
                    continue
                detections = self._coco_api.loadRes(files[metric])
                for group, names in self.category_groups.items():
                    ap, ap50 = self._group_ap(detections, metric, names)
                    metrics[f'{metric}_mAP_{group}'] = ap
                    metrics[f'{metric}_mAP_50_{group}'] = ap50
        return metrics

    def _group_ap(self, detections, metric: str, names: list[str]) -> tuple[float, float]:
        cat_ids = self._coco_api.get_cat_ids(cat_names=list(names))
        if len(cat_ids) != len(names):
            known = {c['name'] for c in self._coco_api.load_cats(self._coco_api.get_cat_ids())}
            raise KeyError(f'category_groups: {sorted(set(names) - known)} are not categories '
                           f'of the ground truth (its ann_file)')
        evaluator = COCOeval(self._coco_api, detections, metric)
        evaluator.params.catIds = cat_ids
        evaluator.params.imgIds = self.img_ids
        evaluator.params.maxDets = list(self.proposal_nums)
        evaluator.params.iouThrs = self.iou_thrs
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        ap, ap50 = float(evaluator.stats[0]), float(evaluator.stats[1])
        return (round(ap, 3) if ap >= 0 else math.nan, round(ap50, 3) if ap50 >= 0 else math.nan)
