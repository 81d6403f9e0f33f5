"""LearningWatch: collapsed candidates and chance-level losses are said once, with numbers."""

import math

import torch

from up2core.engine.learning import LearningWatch
from up2core.likelihood import UnifiedLikelihood


def _obs(group, loss, chance, cosine):
    return dict(group=group, loss=loss, chance=chance, cosine=cosine)


def test_a_learning_group_is_not_flagged_even_when_it_starts_at_chance():
    watch = LearningWatch(window=5)
    chance = math.log(52)
    for step in range(40):
        loss = chance * max(0.3, 1 - step / 20)  # at chance first, then learning
        assert watch.observe(step, [_obs('detection', loss, chance, 0.4)]) == []
    assert watch.findings == {}


def test_collapse_and_chance_are_reported_once_with_the_iteration():
    watch = LearningWatch(window=4)
    chance = math.log(52)
    said = []
    for step in range(12):
        said += watch.observe(step, [_obs('detection', chance, chance, 0.99),
                                     _obs('captioning', 2.0, 7.0, 0.3)])
    assert len(said) == 2  # once each, not at every later step
    assert "group 'detection': its candidates collapsed by iteration 4" in said[0]
    assert 'mean pairwise cosine 0.990' in said[0] and 'Lower the learning rate' in said[0]
    assert "group 'detection': its loss has stayed at chance level" in said[1]
    assert watch.findings == {'learning/detection/collapsed_at': 4,
                              'learning/detection/at_chance_since': 0}


def test_the_likelihood_observes_training_losses_with_chance_and_cosine():
    lik = UnifiedLikelihood(groups=('g',))
    same = torch.randn(1, 8).repeat(6, 1)  # six identical candidates: collapsed
    lik.train()
    lik.loss(torch.randn(4, 8), same, torch.tensor([0, 1, 2, 3]), 'g', weight=3.0)
    (obs,) = lik.take_observations()
    assert obs['group'] == 'g' and abs(obs['cosine'] - 1.0) < 1e-5
    assert abs(obs['chance'] - math.log(6)) < 1e-6 and abs(obs['loss'] - math.log(6)) < 1e-4
    lik.eval()
    lik.loss(torch.randn(4, 8), same, torch.tensor([0, 1, 2, 3]), 'g')
    assert lik.take_observations() == []  # evaluation is not watched


def test_a_run_still_at_chance_but_improving_within_the_window_is_not_flagged():
    # the healthy main job: region naming at ln 52 for ~20 steps, then learning
    watch = LearningWatch(window=50)
    chance = math.log(52)
    for step in range(50):
        loss = chance * 1.05 if step < 25 else chance * 0.93  # window mean 0.99 x chance
        assert watch.observe(step, [_obs('detection', loss, chance, 0.97 - step * 0.002)]) == []
