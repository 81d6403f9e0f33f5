"""Pictures ``up2 test`` adds to a detection or mask report: precision-recall curves and a
confusion matrix with background, each with its numbers in JSON beside it.

* :func:`pr_curves`: from COCOeval's ``eval['precision']`` array ([IoU, recall, category,
  area, max detections]), the precision at each of COCO's 101 recall points, averaged over the
  categories of a group (all of them, and each of ``category_groups``: seen and novel names),
  at IoU 0.50, 0.75 and averaged over 0.50:0.95 -- the curves whose areas are AP50, AP75
  and AP;
* :func:`confusion_matrix`: each ground-truth object matched to the highest-scoring
  detection above ``score_thr`` that overlaps it by ``iou_thr`` (boxes, any name, each
  detection matched once): counts of (true name, predicted name), with a ``background`` row
  (detections of nothing) and column (objects nothing detected).  mmdet has the same analysis
  as a script (``tools/analysis_tools/confusion_matrix.py``), not as a function a metric can
  call, hence this one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

BACKGROUND = 'background'


def pr_curves(precision: np.ndarray, iou_thrs, groups: dict[str, list[int]]) -> dict:
    """``{group: {'iou=0.50': [101 precisions], 'iou=0.75': [...], 'iou=0.50:0.95':
    [...]}}`` (NaN where no category of the group has ground truth); ``groups`` maps a name
    to category indices of the precision array's third axis."""
    iou_thrs = [round(float(t), 2) for t in iou_thrs]
    curves: dict[str, dict] = {}
    for group, indices in groups.items():
        if not indices:
            continue
        table = precision[:, :, indices, 0, -1]  # [iou, recall, categories], all areas
        valid = table > -1
        summed = np.where(valid, table, 0.0).sum(axis=2)
        counts = valid.sum(axis=2)
        per_iou = np.where(counts > 0, summed / np.maximum(counts, 1), np.nan)  # [iou, recall]
        entry = {}
        for threshold in (0.5, 0.75):
            if threshold in iou_thrs:
                entry[f'iou={threshold:.2f}'] = per_iou[iou_thrs.index(threshold)].tolist()
        entry['iou=0.50:0.95'] = np.nanmean(per_iou, axis=0).tolist() \
            if np.isfinite(per_iou).any() else [math.nan] * per_iou.shape[1]
        curves[group] = entry
    return curves


def _iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """[N, M] IoU of xywh boxes."""
    if not len(boxes) or not len(others):
        return np.zeros((len(boxes), len(others)))
    a = np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])
    b = np.column_stack([others[:, :2], others[:, :2] + others[:, 2:]])
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(axis=2)
    union = boxes[:, 2:].prod(axis=1)[:, None] + others[:, 2:].prod(axis=1)[None] - inter
    return inter / np.maximum(union, 1e-9)


def confusion_matrix(ground_truth, detections, cat_ids: list[int], img_ids: list[int],
                     score_thr: float = 0.3, iou_thr: float = 0.5) -> np.ndarray:
    """[C + 1, C + 1] counts: row = true category (last: background), column = predicted
    (last: background), for the categories ``cat_ids`` in that order; ``ground_truth`` and
    ``detections`` are pycocotools ``COCO`` objects."""
    index = {cat: i for i, cat in enumerate(cat_ids)}
    size = len(cat_ids)
    matrix = np.zeros((size + 1, size + 1), dtype=np.int64)
    for image in img_ids:
        gts = [a for a in ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=[image]))
               if a['category_id'] in index and not a.get('iscrowd', 0)]
        dets = [d for d in detections.loadAnns(detections.getAnnIds(imgIds=[image]))
                if d['category_id'] in index and d.get('score', 1.0) >= score_thr]
        dets.sort(key=lambda d: -d.get('score', 1.0))
        overlaps = _iou(np.array([g['bbox'] for g in gts], dtype=float).reshape(-1, 4),
                        np.array([d['bbox'] for d in dets], dtype=float).reshape(-1, 4))
        taken = np.zeros(len(dets), dtype=bool)
        for row, gt in enumerate(gts):
            candidates = np.flatnonzero((overlaps[row] >= iou_thr) & ~taken) \
                if len(dets) else []
            true = index[gt['category_id']]
            if len(candidates):
                best = candidates[0]  # detections are by score: the highest-scoring one
                taken[best] = True
                matrix[true, index[dets[best]['category_id']]] += 1
            else:
                matrix[true, size] += 1
        for column, det in enumerate(dets):
            if not taken[column]:
                matrix[size, index[det['category_id']]] += 1
    return matrix


def write_pr_curves(curves: dict, metric: str, out: Path) -> None:
    """``pr_curves_<metric>.json`` and ``.png`` (a panel per group) in ``out``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    recall = np.linspace(0, 1, 101)
    (out / f'pr_curves_{metric}.json').write_text(json.dumps(
        {'recall': recall.round(2).tolist(), 'precision': curves}).replace('NaN', 'null') + '\n')
    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.8), squeeze=False)
    for ax, (group, entry) in zip(axes[0], curves.items()):
        for label, values in entry.items():
            values = np.array(values, dtype=float)
            area = np.nanmean(values) if np.isfinite(values).any() else math.nan
            ax.plot(recall, values, label=f'{label} (area {area:.3f})')
        ax.set_title(f'{metric}: {group}', fontsize=10)
        ax.set_xlabel('recall', fontsize=8)
        ax.set_ylabel('precision', fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc='lower left')
        ax.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(out / f'pr_curves_{metric}.png', dpi=90)
    plt.close(figure)


def write_confusion_matrix(matrix: np.ndarray, names: list[str], out: Path,
                           score_thr: float, iou_thr: float) -> None:
    """``confusion_matrix.json`` and ``.png`` in ``out`` (rows: true, columns: predicted)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    labels = list(names) + [BACKGROUND]
    (out / 'confusion_matrix.json').write_text(json.dumps(
        {'labels': labels, 'rows': 'true', 'columns': 'predicted', 'score_thr': score_thr,
         'iou_thr': iou_thr, 'counts': matrix.tolist()}, indent=1) + '\n')
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.where(rows > 0, matrix / np.maximum(rows, 1), 0.0)
    side = min(16.0, max(4.0, 0.45 * len(labels) + 2))  # 64 names still legible
    figure, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(shares, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha='right', fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel('predicted', fontsize=8)
    ax.set_ylabel('true', fontsize=8)
    if len(labels) <= 25:
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                ax.text(column, row, str(count), ha='center', va='center', fontsize=6,
                        color='white' if shares[row, column] > 0.5 else 'black')
    ax.set_title(f'boxes: IoU >= {iou_thr}, score >= {score_thr} (share of each true row)',
                 fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.046)
    figure.tight_layout()
    figure.savefig(out / 'confusion_matrix.png', dpi=90)
    plt.close(figure)
