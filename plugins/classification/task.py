"""Classification: ``x`` = the image, ``Y`` = every class name in a prompt."""

from __future__ import annotations

import torch
from torch import Tensor
from up2_classification.dataset import read_class_names

from up2core.task import Task, keep_names


class ClassificationTask(Task):
    """Image classification as likelihood over class names.

    Args:
        class_names: names, or a file with one per line.
        prompt: template that a class name is written into (``{}`` marks the name).
        topk: how many ranked classes a prediction keeps.
        label_smoothing: of the cross-entropy.
        image_tokens: ``'all'`` (global and region tokens, when the model has proposals) or
            ``'global'`` (the global tokens only: the paper's global-only ablation).
        loss_weight, likelihood_group: see :class:`~up2core.task.Task`.
    """

    def __init__(self, class_names, prompt: str = 'a photo of a {}.', topk: int = 5,
                 label_smoothing: float = 0.0, loss_weight: float = 1.0,
                 likelihood_group: str | None = None, image_tokens: str = 'all') -> None:
        super().__init__(loss_weight=loss_weight, likelihood_group=likelihood_group)
        if image_tokens not in ('all', 'global'):
            raise ValueError(f"image_tokens must be 'all' or 'global', got {image_tokens!r}")
        self.image_tokens = image_tokens
        self.class_names = read_class_names(class_names)
        if '{}' not in prompt:
            raise ValueError(f"prompt {prompt!r} has no '{{}}' for the class name")
        self.prompt = prompt
        self.prompts = [prompt.format(n.replace('_', ' ')) for n in self.class_names]
        self.topk = topk
        self.label_smoothing = label_smoothing

    data_layout = 'image_folder'
    headline_metrics = ('top1',)

    @classmethod
    def data_options(cls, layout, source, names) -> dict:
        """The class names of the user's image-folder tree (folder names or classes.txt)."""
        return {'class_names': list(names['train'])}

    @classmethod
    def kept_names_options(cls, own, base) -> dict:
        """The base's classes after the user's (their labels keep their indices)."""
        def names(value):
            return read_class_names(value) if value is not None else []

        return {'class_names': keep_names(names(own.get('class_names')),
                                          names(base.get('class_names')))}

    def data_names(self) -> dict[str, list[str]]:
        return {'classes': list(self.class_names)}

    def class_features(self, model) -> Tensor:
        """[num_classes, C]: each prompt through the text encoder and the shared decoder
        (cached in eval: :meth:`~up2core.task.Task.cached_candidates`)."""
        return self.cached_candidates(model, 'classes', lambda: model.decode(
            [model.text_segment(self.prompts, target=True)]).spe)

    def image_features(self, model, inputs: Tensor) -> Tensor:
        segments = model.image_segments(model.encode_image(inputs))
        if self.image_tokens == 'global':
            segments = segments[:1]  # the paper's "global only" row: no proposal tokens
        return model.decode(segments).spe

    def loss(self, model, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        labels = torch.as_tensor([int(s.gt_label) for s in data_samples], device=inputs.device)
        x = self.image_features(model, inputs)
        y = self.class_features(model)
        loss = model.likelihood.loss(x, y, labels, self.likelihood_group, self.loss_weight,
                                     self.label_smoothing)
        with torch.no_grad():
            accuracy = (model.likelihood.logits(x, y, self.likelihood_group).argmax(-1)
                        == labels).float().mean() * 100
        return {'loss_cls': loss, 'acc_cls': accuracy}

    def predict(self, model, inputs: Tensor, data_samples: list) -> list:
        x = self.image_features(model, inputs)
        scores, labels = model.likelihood.predict(x, self.class_features(model),
                                                  self.likelihood_group, self.topk)
        for sample, s, lab in zip(data_samples, scores.cpu(), labels.cpu()):
            sample.pred_topk_labels = lab
            sample.pred_topk_scores = s
            sample.pred_label = int(lab[0])
            sample.pred_class = self.class_names[int(lab[0])]
            sample.pred_topk_classes = [self.class_names[int(i)] for i in lab]
        return data_samples

    def export_head(self, model, classes: list[str] | None = None, **options):
        """``scores`` ``[N, M]``: the probability of each class name (the config's, or
        ``classes``), as :meth:`predict` ranks them."""
        from up2core.export.head import CandidateScoresHead

        names = list(classes) if classes else self.class_names
        features = self.class_features(model) if not classes else model.decode(
            [model.text_segment([self.prompt.format(n.replace('_', ' ')) for n in names],
                                target=True)]).spe
        return CandidateScoresHead(self.image_features, features, self.likelihood_group,
                                   metadata={'classes': names})

    def to_result(self, sample) -> dict:
        """``classes``, ``labels`` and ``scores`` of the top-k, best first."""
        return {'classes': list(sample.pred_topk_classes),
                'labels': [int(i) for i in sample.pred_topk_labels],
                'scores': [float(s) for s in sample.pred_topk_scores]}

    def format_result(self, result: dict) -> list[str]:
        return [f'  {rank:>2}. {score:6.3f}  {name}' for rank, (name, score)
                in enumerate(zip(result['classes'], result['scores']), start=1)]
