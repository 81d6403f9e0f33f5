"""Retrieval: images and captions, each the other's candidate set."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from up2core.task import Task


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """All ranks' ``x`` concatenated (gradients flow back to each rank's part), and this rank's
    offset in it.  Without a process group: ``x`` itself and 0."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x.contiguous())
    offset = sum(p.shape[0] for p in parts[:dist.get_rank()])
    return torch.cat(parts), offset


class RetrievalTask(Task):
    """Image-text retrieval as likelihood over the other modality.

    Args:
        gather: in distributed training, score every rank's items as candidates (the paper's
            cross-GPU gather), with gradients through the gather.
        image_tokens: ``'all'`` (global and region tokens, when the model has proposals) or
            ``'global'`` (the global tokens only: the paper's global-only ablation).
        loss_weight, likelihood_group: see :class:`~up2core.task.Task`.
    """

    infer_requires = ('texts',)
    data_layout = 'captions'
    headline_metrics = ('i2t_R@1', 't2i_R@1')

    def __init__(self, gather: bool = True, loss_weight: float = 1.0,
                 likelihood_group: str | None = None, image_tokens: str = 'all') -> None:
        super().__init__(loss_weight=loss_weight, likelihood_group=likelihood_group)
        if image_tokens not in ('all', 'global'):
            raise ValueError(f"image_tokens must be 'all' or 'global', got {image_tokens!r}")
        self.image_tokens = image_tokens
        self.gather = gather

    def image_features(self, model, inputs: Tensor) -> Tensor:
        segments = model.image_segments(model.encode_image(inputs))
        if self.image_tokens == 'global':
            segments = segments[:1]  # the paper's "global only" row: no proposal tokens
        return model.decode(segments).spe

    def text_features(self, model, texts: list[str]) -> Tensor:
        return model.decode([model.text_segment(texts, target=True)]).spe

    def loss(self, model, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        texts = [s.texts[0] for s in data_samples]
        x = self.image_features(model, inputs)
        y = self.text_features(model, texts)
        all_x, offset = gather_with_grad(x) if self.gather else (x, 0)
        all_y, _ = gather_with_grad(y) if self.gather else (y, 0)
        targets = torch.arange(len(x), device=x.device) + offset
        lik, group = model.likelihood, self.likelihood_group
        i2t = F.cross_entropy(lik.logits(x, all_y, group), targets)
        t2i = F.cross_entropy(lik.logits(y, all_x, group), targets)
        with torch.no_grad():
            hit = (lik.logits(x, all_y, group).argmax(-1) == targets).float().mean() * 100
        return {'loss_i2t': self.loss_weight * i2t / 2, 'loss_t2i': self.loss_weight * t2i / 2,
                'acc_i2t': hit, 'candidates': torch.tensor(float(len(all_y)))}

    def predict(self, model, inputs: Tensor, data_samples: list) -> list:
        x = F.normalize(self.image_features(model, inputs), dim=-1)
        counts = [len(s.texts) for s in data_samples]
        y = F.normalize(self.text_features(model, [t for s in data_samples for t in s.texts]),
                        dim=-1)
        for sample, image, texts in zip(data_samples, x.cpu(), y.cpu().split(counts)):
            sample.image_feature = image
            sample.text_features = texts
        return data_samples

    def infer(self, model, inputs: Tensor, data_samples: list, texts: list[str] | None = None,
              **kwargs) -> list:
        """Rank ``texts`` for each image: ``pred_text_scores`` (probabilities) and
        ``pred_text_ranking`` (indices into ``texts``, best first)."""
        if not texts:
            raise ValueError('retrieval inference needs candidate texts to rank (--texts ...)')
        x = self.image_features(model, inputs)
        y = self.text_features(model, list(texts))
        probs = model.likelihood.logits(x, y, self.likelihood_group).softmax(-1).cpu()
        for sample, p in zip(data_samples, probs):
            sample.pred_text_scores = p
            sample.pred_text_ranking = p.argsort(descending=True)
            sample.texts = list(texts)
        return data_samples

    def export_head(self, model, texts: list[str] | None = None, **options):
        """``scores`` ``[N, T]``: the probability of each of the given ``texts`` for each
        image (the texts are baked into the graph)."""
        from up2core.errors import UserError
        from up2core.export.head import CandidateScoresHead

        if not texts:
            raise UserError('exporting retrieval needs the candidate texts to rank: --texts ...')
        return CandidateScoresHead(self.image_features, self.text_features(model, list(texts)),
                                   self.likelihood_group, metadata={'texts': list(texts)})

    def to_result(self, sample) -> dict:
        """The candidate ``texts`` ranked best first, with their ``scores``."""
        order = sample.pred_text_ranking.tolist()
        return {'texts': [sample.texts[i] for i in order],
                'scores': [float(sample.pred_text_scores[i]) for i in order]}

    def format_result(self, result: dict) -> list[str]:
        return [f'  {rank:>2}. {score:6.3f}  {text}' for rank, (text, score)
                in enumerate(zip(result['texts'], result['scores']), start=1)]
