"""Recall@K for image-to-text and text-to-image retrieval, over the whole split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from torch import Tensor


def retrieval_ranks(images: Tensor, texts: Tensor, text_to_image: Tensor,
                    chunk_size: int = 1000) -> tuple[Tensor, Tensor]:
    """Rank (0 = best) of the first correct item, for every image and every text.

    Args:
        images: [I, C] image features; texts: [T, C] text features (L2-normalised here).
        text_to_image: [T] index of each text's image.
        chunk_size: rows of the similarity matrix held at once, so that memory stays
            O(chunk_size * max(I, T)) (5,000 images x 25,000 captions fit easily).

    Returns:
        (i2t [I]: rank of the best-ranked caption of each image,
         t2i [T]: rank of each caption's image).
    """
    images, texts = F.normalize(images.float(), dim=-1), F.normalize(texts.float(), dim=-1)
    i2t = torch.empty(len(images), dtype=torch.long)
    for start in range(0, len(images), chunk_size):
        sims = images[start:start + chunk_size] @ texts.t()  # [c, T]
        rows = torch.arange(start, start + len(sims))
        own = text_to_image[None, :] == rows[:, None]  # [c, T] which texts belong to each image
        best_own = sims.masked_fill(~own, float('-inf')).max(dim=1).values
        i2t[start:start + len(sims)] = (sims > best_own[:, None]).sum(dim=1)
    t2i = torch.empty(len(texts), dtype=torch.long)
    for start in range(0, len(texts), chunk_size):
        sims = texts[start:start + chunk_size] @ images.t()  # [c, I]
        own = sims.gather(1, text_to_image[start:start + len(sims), None])
        t2i[start:start + len(sims)] = (sims > own).sum(dim=1)
    return i2t, t2i


class RetrievalRecall(BaseMetric):
    """R@K both ways.  Expects samples with ``image_feature`` [C] and ``text_features`` [n, C].

    Keys: ``i2t_R@K``, ``t2i_R@K`` (percent) and ``rsum`` (their sum).  With ``report_dir``
    (``up2 test`` sets it), the recall at every K from 1 to :data:`CURVE_K` both ways, as
    ``recall_at_k.json`` and ``recall_at_k.png``.
    """

    default_prefix = ''
    #: ``up2 test`` gives metrics with this flag a ``report_dir`` for their reports
    writes_reports = True

    def __init__(self, ks: tuple[int, ...] = (1, 5, 10), chunk_size: int = 1000,
                 report_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks, self.chunk_size = tuple(ks), chunk_size
        self.report_dir = report_dir

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            self.results.append((sample['image_feature'].cpu(), sample['text_features'].cpu()))

    def compute_metrics(self, results) -> dict[str, float]:
        images = torch.stack([image for image, _ in results])
        texts = torch.cat([t for _, t in results])
        owner = torch.cat([torch.full((len(t),), i) for i, (_, t) in enumerate(results)])
        keys = [f'{d}_R@{k}' for d in ('i2t', 't2i') for k in self.ks] + ['rsum']
        if not (torch.isfinite(images).all() and torch.isfinite(texts).all()):
            # Every comparison with NaN is False, so ranks would all be 0: a perfect score.
            print_log('retrieval: the features hold NaN or infinity (a diverged model?); '
                      'recall cannot be computed and is reported as NaN', logger='current',
                      level=logging.WARNING)
            return {key: float('nan') for key in keys}
        i2t, t2i = retrieval_ranks(images, texts, owner, self.chunk_size)
        metrics = {}
        for k in self.ks:
            metrics[f'i2t_R@{k}'] = 100.0 * (i2t < k).float().mean().item()
        for k in self.ks:
            metrics[f't2i_R@{k}'] = 100.0 * (t2i < k).float().mean().item()
        metrics['rsum'] = sum(metrics.values())
        if self.report_dir:
            write_recall_curves(i2t, t2i, Path(self.report_dir))
        return metrics


#: the recall curves of a report go from K = 1 to this (or the number of candidates)
CURVE_K = 50


def write_recall_curves(i2t: Tensor, t2i: Tensor, out: Path) -> dict:
    """``recall_at_k.json`` (``k``, ``i2t``, ``t2i``: percent at each K) and ``.png`` in
    ``out``, from the ranks of :func:`retrieval_ranks`; returns the JSON's content."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    top = min(CURVE_K, max(int(i2t.max()), int(t2i.max())) + 1)
    ks = list(range(1, top + 1))
    curves = {'k': ks,
              'i2t': [100.0 * (i2t < k).float().mean().item() for k in ks],
              't2i': [100.0 * (t2i < k).float().mean().item() for k in ks]}
    (out / 'recall_at_k.json').write_text(json.dumps(curves) + '\n')
    figure, ax = plt.subplots(figsize=(5.0, 3.6))
    for way, label in (('i2t', 'image -> text'), ('t2i', 'text -> image')):
        ax.plot(ks, curves[way], marker='.', label=f'{label} (R@1 {curves[way][0]:.1f})')
    ax.set_xscale('log')
    ax.set_xlabel('K', fontsize=8)
    ax.set_ylabel('recall@K (%)', fontsize=8)
    ax.set_ylim(0, 101)
    ax.set_title(f'retrieval: {len(i2t)} images, {len(t2i)} texts', fontsize=10)
    ax.legend(fontsize=7, loc='lower right')
    ax.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(out / 'recall_at_k.png', dpi=90)
    plt.close(figure)
    return curves
