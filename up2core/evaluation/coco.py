"""COCO box / mask AP (mmdet's ``CocoMetric``), plus AP over named groups of categories.

Open-vocabulary detection is judged by AP on the category names seen in training next to AP on
names never trained on.  :class:`GroupedCocoMetric` reports mmdet's metrics unchanged and, for
every group in ``category_groups``, pycocotools' AP with ``params.catIds`` restricted to the
group's categories (exactly what COCOeval computes for that subset of categories).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os.path as osp
import tempfile
from pathlib import Path

from mmdet.datasets.api_wrappers import COCOeval
from mmdet.evaluation.metrics import CocoMetric
from mmengine.logging import MMLogger

from up2core.registry import METRICS

#: a detection counts in the confusion matrix from this score, and matches an object from this IoU
CONFUSION_SCORE, CONFUSION_IOU = 0.3, 0.5


@METRICS.register_module()
class GroupedCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` + ``{metric}_mAP_{group}`` / ``{metric}_mAP_50_{group}`` keys;
    values COCOeval leaves undefined (its -1, e.g. ``mAP_l`` without large objects) are NaN.

    Args:
        category_groups: ``dict(seen=[names], novel=[names])``; a group with no ground truth in
            the split reports NaN (COCOeval's -1 is not an AP).
        report_dir: also write there, as ``up2 test`` asks, the AP of every category
            (``per_class_bbox_ap.json`` and ``.txt``, worst first), the precision-recall
            curves of all categories and of each group (``pr_curves_bbox.png`` / ``.json``)
            and the confusion matrix of the boxes with background (``confusion_matrix.png``
            / ``.json``; :mod:`up2core.evaluation.detection_reports`).
        **kwargs: ``CocoMetric``'s (``ann_file``, ``metric='bbox'`` or ``'segm'``, ...).

    Examples:
        >>> dict(type='GroupedCocoMetric', metric='bbox', ann_file='.../instances_val.json',
        ...      category_groups=dict(novel=['red star', 'blue circle']))
    """

    #: ``up2 test`` gives metrics with this flag a ``report_dir`` for their per-class files
    writes_reports = True

    def __init__(self, category_groups: dict[str, list[str]] | None = None,
                 report_dir: str | None = None, **kwargs) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' progress prints
            super().__init__(**kwargs)
            if self._coco_api is not None:
                self._coco_api = self._ruled_ground_truth(kwargs['ann_file'])
        self.category_groups = dict(category_groups or {})
        self.report_dir = report_dir

    def _ruled_ground_truth(self, ann_file: str):
        """The ground truth as the readers see it (:mod:`up2core.data.coco_rules`: boxes
        clipped, areas completed, refused records out), so that AP is computed on what was
        trained and predicted, and a file without ``area`` does not stop COCOeval."""
        from up2core.data.coco import coco_api
        from up2core.data.coco_rules import read_instances

        cleaned, _ = read_instances(json.loads(Path(ann_file).read_text(encoding='utf-8')),
                                    str(ann_file))
        return coco_api(cleaned)

    def _label_ids(self) -> list:
        """Category id of each label: ``classes[i]``'s id (mmdet takes the file's order of
        the named categories, which is another order when ``classes`` is)."""
        ids = {cat['name']: cat['id'] for cat in self._coco_api.dataset['categories']}
        missing = [n for n in self.dataset_meta['classes'] if n not in ids]
        if missing:
            raise KeyError(f'classes {missing[:3]} are not categories of the ground truth '
                           f'(its ann_file)')
        return [ids[name] for name in self.dataset_meta['classes']]

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.cat_ids is None and self._coco_api is not None:
            self.cat_ids = self._label_ids()
        # COCOeval writes -1 where a value is undefined (no ground truth in an area range):
        # reported as NaN, never as a number that looks like a score.
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # COCOeval's tables: the log file's, not
            computed = super().compute_metrics(results)  # the console's (the metrics are)
        if printed.getvalue().strip():
            MMLogger.get_current_instance().info(printed.getvalue().rstrip())
        metrics = {k: (math.nan if v == -1 else v) for k, v in computed.items()}
        if not self.category_groups and not self.report_dir:
            return metrics
        _, preds = zip(*results)
        with tempfile.TemporaryDirectory() as tmp:
            files = self.results2json(preds, osp.join(tmp, 'results'))
            for metric in self.metrics:
                if metric not in files:
                    continue
                with contextlib.redirect_stdout(io.StringIO()):
                    detections = self._coco_api.loadRes(files[metric])
                for group, names in self.category_groups.items():
                    ap, ap50 = self._group_ap(detections, metric, names)
                    metrics[f'{metric}_mAP_{group}'] = ap
                    metrics[f'{metric}_mAP_50_{group}'] = ap50
                if self.report_dir:
                    self._write_per_class(detections, metric)
        return metrics

    def _precision(self, detections, metric: str):
        """COCOeval's precision array over every category ([iou, recall, category, area,
        maxDets], -1 where undefined)."""
        evaluator = COCOeval(self._coco_api, detections, metric)
        evaluator.params.catIds = list(self.cat_ids)
        evaluator.params.imgIds = self.img_ids
        evaluator.params.maxDets = list(self.proposal_nums)
        evaluator.params.iouThrs = self.iou_thrs
        with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress
            evaluator.evaluate()
            evaluator.accumulate()
        return evaluator.eval['precision']

    def per_class_ap(self, detections, metric: str, precision=None) -> dict[str, dict]:
        """``{name: {AP, AP50, AP75, ground_truth, detections}}`` of every category, from one
        COCOeval over all of them (AP: mean precision over IoU 0.5:0.95 and recall, all areas,
        the largest maxDets; NaN for a category without ground truth)."""
        if precision is None:
            precision = self._precision(detections, metric)

        def mean(values) -> float:
            values = values[values > -1]
            return round(float(values.mean()), 4) if values.size else math.nan

        table = {}
        for index, cat_id in enumerate(self.cat_ids):
            name = self._coco_api.load_cats(cat_id)[0]['name']
            table[name] = {
                'AP': mean(precision[:, :, index, 0, -1]),
                'AP50': mean(precision[0, :, index, 0, -1]),
                'AP75': mean(precision[5, :, index, 0, -1]) if len(self.iou_thrs) > 5
                else math.nan,
                'ground_truth': len(self._coco_api.get_ann_ids(cat_ids=[cat_id],
                                                               img_ids=self.img_ids)),
                'detections': len(detections.getAnnIds(catIds=[cat_id], imgIds=self.img_ids)),
            }
        return table

    def _write_per_class(self, detections, metric: str) -> None:
        from up2core.evaluation.detection_reports import (
            confusion_matrix,
            pr_curves,
            write_confusion_matrix,
            write_pr_curves,
        )

        precision = self._precision(detections, metric)
        table = self.per_class_ap(detections, metric, precision)
        out = Path(self.report_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = [self._coco_api.load_cats(cat_id)[0]['name'] for cat_id in self.cat_ids]
        groups = {'all': list(range(len(names)))}
        groups.update({group: [names.index(n) for n in members if n in names]
                       for group, members in self.category_groups.items()})
        write_pr_curves(pr_curves(precision, self.iou_thrs, groups), metric, out)
        if metric == self.metrics[0]:  # one matrix per report, of the boxes
            write_confusion_matrix(
                confusion_matrix(self._coco_api, detections, list(self.cat_ids), self.img_ids,
                                 CONFUSION_SCORE, CONFUSION_IOU), names, out, CONFUSION_SCORE,
                CONFUSION_IOU)
        (out / f'per_class_{metric}_ap.json').write_text(
            json.dumps(table, indent=2).replace('NaN', 'null') + '\n')
        lines = [f"{'category':<24} {'AP':>6} {'AP50':>6} {'AP75':>6} {'gt':>5}"]
        # worst first; categories without ground truth (AP undefined) last
        for name, row in sorted(table.items(), key=lambda kv: (math.isnan(kv[1]['AP']),
                                                               kv[1]['AP'])):
            lines.append(f"{name[:24]:<24} {row['AP']:>6.3f} {row['AP50']:>6.3f} "
                         f"{row['AP75']:>6.3f} {row['ground_truth']:>5}")
        (out / f'per_class_{metric}_ap.txt').write_text('\n'.join(lines) + '\n')

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
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # the group's COCOeval table: log file only
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        MMLogger.get_current_instance().info(f'{metric} AP of {len(cat_ids)} categories '
                                             f'({names[0]}, ...):\n{printed.getvalue().rstrip()}')
        ap, ap50 = float(evaluator.stats[0]), float(evaluator.stats[1])
        return (round(ap, 3) if ap >= 0 else math.nan, round(ap50, 3) if ap50 >= 0 else math.nan)
