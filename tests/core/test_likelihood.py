import math

import pytest
import torch
import torch.nn.functional as F

from up2core.likelihood import UnifiedLikelihood


def test_logits_are_scaled_cosines():
    lik = UnifiedLikelihood(groups=('a',), init_temperature=0.1)
    x, y = torch.randn(3, 8), torch.randn(5, 8)
    expected = 10 * F.cosine_similarity(x[:, None], y[None], dim=-1)
    torch.testing.assert_close(lik.logits(x, y, 'a'), expected, rtol=1e-5, atol=1e-5)


def test_gradient_flows_to_both_sides_and_the_temperature():
    lik = UnifiedLikelihood(groups=('a',))
    x = torch.randn(4, 8, requires_grad=True)
    y = torch.randn(6, 8, requires_grad=True)
    lik.loss(x, y, torch.tensor([0, 1, 2, 3]), 'a').backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    assert lik.log_scale['a'].grad.abs() > 0


def test_loss_is_cross_entropy_of_the_logits_and_weighted():
    lik = UnifiedLikelihood(groups=('a',))
    x, y, t = torch.randn(4, 8), torch.randn(6, 8), torch.tensor([5, 1, 2, 0])
    ce = F.cross_entropy(lik.logits(x, y, 'a'), t)
    torch.testing.assert_close(lik.loss(x, y, t, 'a', weight=2.0), 2 * ce)


def test_scale_is_clamped_and_groups_are_separate():
    lik = UnifiedLikelihood(groups=('a', 'b'), max_scale=100)
    with torch.no_grad():
        lik.log_scale['a'].fill_(math.log(1000))
    assert lik.scale('a').item() == 100 and lik.scale('b').item() == pytest.approx(1 / 0.07)
    with pytest.raises(KeyError, match="unknown likelihood group 'c'"):
        lik.scale('c')


def test_predict_is_the_argmax_of_the_likelihood():
    lik = UnifiedLikelihood()
    y = torch.eye(4)
    x = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.0, 0.0, 0.2, 1.0]])
    probs, labels = lik.predict(x, y, topk=2)
    assert labels[:, 0].tolist() == [1, 3] and labels[:, 1].tolist() == [0, 2]
    assert torch.all(probs[:, 0] >= probs[:, 1])
