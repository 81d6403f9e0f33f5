"""Top-k accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mmengine.evaluator import BaseMetric


class TopKAccuracy(BaseMetric):
    """Percentage of samples whose label is among the top-k predictions, for each k.

    Expects data samples with ``gt_label`` and ``pred_topk_labels`` (best first).  With
    ``report_dir`` (``up2 test`` sets it) it also writes the top-1 confusion matrix there
    (``confusion_matrix.json`` and ``.png``).
    """

    default_prefix = ''
    #: ``up2 test`` gives metrics with this flag a ``report_dir`` for their per-class files
    writes_reports = True

    def __init__(self, topk: tuple[int, ...] = (1, 5), report_dir: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.topk = tuple(topk)
        self.report_dir = report_dir

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            ranked = [int(x) for x in sample['pred_topk_labels']]
            self.results.append((int(sample['gt_label']), ranked))

    def compute_metrics(self, results) -> dict[str, float]:
        metrics = {}
        for k in self.topk:
            hits = sum(label in ranked[:k] for label, ranked in results)
            metrics[f'top{k}'] = 100.0 * hits / len(results)
        if self.report_dir:
            names = list((self.dataset_meta or {}).get('classes') or [])
            write_confusion_matrix(results, names, Path(self.report_dir))
        return metrics


def confusion_matrix(results, num_classes: int) -> np.ndarray:
    """``[true, predicted]`` counts from ``(label, ranked predictions)`` pairs."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for label, ranked in results:
        if 0 <= label < num_classes and ranked and 0 <= ranked[0] < num_classes:
            matrix[label, ranked[0]] += 1
    return matrix


def write_confusion_matrix(results, names: list[str], out: Path) -> None:
    """``confusion_matrix.json`` (names, counts, per-class recall and precision) and
    ``confusion_matrix.png`` (row-normalised, counts written in the cells) under ``out``."""
    size = max([len(names)] + [max(label, ranked[0] if ranked else 0) + 1
                               for label, ranked in results])
    names = names + [str(i) for i in range(len(names), size)]
    matrix = confusion_matrix(results, size)
    rows, columns = matrix.sum(1), matrix.sum(0)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'confusion_matrix.json').write_text(json.dumps({
        'classes': names, 'matrix': matrix.tolist(), 'rows': 'true class',
        'columns': 'predicted class (top-1)',
        'recall': {n: (round(float(matrix[i, i] / rows[i]), 4) if rows[i] else None)
                   for i, n in enumerate(names)},
        'precision': {n: (round(float(matrix[i, i] / columns[i]), 4) if columns[i] else None)
                      for i, n in enumerate(names)}}, indent=2) + '\n')
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    side = min(24, 2 + 0.45 * size)
    figure, ax = plt.subplots(figsize=(side + 1, side))
    normalised = matrix / np.maximum(rows[:, None], 1)
    image = ax.imshow(normalised, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(size))
    ax.set_yticks(range(size))
    ax.set_xticklabels([n[:16] for n in names], rotation=60, ha='right', fontsize=8)
    ax.set_yticklabels([n[:16] for n in names], fontsize=8)
    ax.set_xlabel('predicted (top-1)')
    ax.set_ylabel('true')
    if size <= 40:
        for i in range(size):
            for j in range(size):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha='center', va='center', fontsize=7,
                            color='white' if normalised[i, j] > 0.5 else 'black')
    figure.colorbar(image, ax=ax, fraction=0.046, label='share of the true class')
    ax.set_title(f'confusion matrix ({int(matrix.sum())} images)')
    figure.tight_layout()
    figure.savefig(out / 'confusion_matrix.png', dpi=90)
    plt.close(figure)
