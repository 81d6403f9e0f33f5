"""Counting: ``x`` = the image, ``Y`` = one sentence per possible count.

The whole task is a choice of candidates.  "there are zero shapes." ... "there are four shapes."
go through the text encoder and UP2's shared decoder on the target side, the image through the
image encoder and the same decoder, and the model's likelihood scores every (image, sentence)
pair.  Training maximises the likelihood of the true count's sentence; prediction takes the most
likely one.  Nothing here is specific to the core's built-in tasks: this is the contract every
task plugin implements (see docs/writing-a-task-plugin.md in UP2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from up2core.task import Task

NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
                'ten')


class CountingTask(Task):
    """Count the objects in an image as likelihood over number sentences.

    Args:
        max_count: the largest count a sentence exists for (candidates are 0..max_count).
        template: the sentence a number word is written into (``{}`` marks the word).
        loss_weight, likelihood_group: see :class:`up2core.task.Task`.

    Samples carry ``gt_count`` (an int, packed by ``PackUP2Inputs(data_keys=('gt_count',))``);
    :meth:`predict` fills ``pred_count`` and ``pred_scores`` (the probability of every count).

    Examples:
        >>> task = CountingTask(max_count=2)
        >>> task.sentences
        ['there are zero shapes.', 'there are one shapes.', 'there are two shapes.']
    """

    def __init__(self, max_count: int = 4, template: str = 'there are {} shapes.',
                 loss_weight: float = 1.0, likelihood_group: str | None = None) -> None:
        super().__init__(loss_weight=loss_weight, likelihood_group=likelihood_group)
        if not 0 < max_count < len(NUMBER_WORDS):
            raise ValueError(f'max_count must be in 1..{len(NUMBER_WORDS) - 1}, got {max_count}')
        if '{}' not in template:
            raise ValueError(f"template {template!r} has no '{{}}' for the number word")
        self.max_count = max_count
        self.sentences = [template.format(word) for word in NUMBER_WORDS[:max_count + 1]]

    def sentence_features(self, model) -> Tensor:
        """[max_count + 1, C]: every sentence through the text encoder and the shared decoder."""
        # Candidates change with the weights: cached_candidates recomputes them at every
        # training step and caches them in eval.  target=True: they are the y side of P(x, y)
        # (their own MoE attribute).
        return self.cached_candidates(model, 'sentences', lambda: model.decode(
            [model.text_segment(self.sentences, target=True)]).spe)

    def image_features(self, model, inputs: Tensor) -> Tensor:
        """[N, C]: the image's global tokens through the shared decoder."""
        return model.decode(model.image_segments(model.encode_image(inputs))).spe

    def targets(self, data_samples: list, device) -> Tensor:
        counts = [int(s.gt_count) for s in data_samples]
        too_many = [c for c in counts if not 0 <= c <= self.max_count]
        if too_many:
            raise ValueError(f'a sample has {too_many[0]} objects, more than max_count='
                             f'{self.max_count}; raise max_count in the task config')
        return torch.as_tensor(counts, device=device)

    def loss(self, model, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        targets = self.targets(data_samples, inputs.device)
        x, y = self.image_features(model, inputs), self.sentence_features(model)
        loss = model.likelihood.loss(x, y, targets, self.likelihood_group, self.loss_weight)
        with torch.no_grad():  # logged, not optimised ('loss' not in the key)
            accuracy = (model.likelihood.logits(x, y, self.likelihood_group).argmax(-1)
                        == targets).float().mean() * 100
        return {'loss_count': loss, 'acc_count': accuracy}

    def predict(self, model, inputs: Tensor, data_samples: list) -> list:
        x = self.image_features(model, inputs)
        probs = model.likelihood.logits(x, self.sentence_features(model),
                                        self.likelihood_group).softmax(-1).cpu()
        for sample, p in zip(data_samples, probs):
            sample.pred_scores = p
            sample.pred_count = int(p.argmax())
        return data_samples

    def to_result(self, sample) -> dict:
        """What ``inference()`` returns (and ``up2 infer --json`` prints) for one image."""
        count = int(sample.pred_count)
        return {'count': count, 'sentence': self.sentences[count],
                'score': float(sample.pred_scores[count]),
                'scores': [round(float(s), 4) for s in sample.pred_scores]}

    def format_result(self, result: dict) -> list[str]:
        """What ``up2 infer`` prints under its header."""
        return [f"  {result['count']}  ({result['sentence']!r}, p={result['score']:.3f})"]
