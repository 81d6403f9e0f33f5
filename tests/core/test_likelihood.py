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


# ---------------------------------------------------------------- per-sample candidates


def _reference_logits(lik, x, y, valid, group):
    """The same numbers, one query and one candidate at a time."""
    scale = float(lik.scale(group).detach())
    out = torch.empty(x.shape[0], x.shape[1], y.shape[1])
    for b in range(x.shape[0]):
        for q in range(x.shape[1]):
            for k in range(y.shape[1]):
                cos = torch.dot(x[b, q], y[b, k]) / (x[b, q].norm() * y[b, k].norm())
                out[b, q, k] = scale * cos if valid[b, k] else float('-inf')
    return out


def _setup(seed=0):
    torch.manual_seed(seed)
    lik = UnifiedLikelihood(groups=('g',))
    x, y = torch.randn(3, 4, 16), torch.randn(3, 6, 16)
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[1, 4:] = False  # image 1 has 4 candidates
    valid[2, 3:] = False  # image 2 has 3
    return lik, x, y, valid


def test_per_sample_candidates_match_a_hand_written_reference():
    lik, x, y, valid = _setup()
    logits = lik.logits(x, y, 'g', valid=valid)
    reference = _reference_logits(lik, x, y, valid, 'g')
    finite = torch.isfinite(reference)
    assert torch.allclose(logits[finite], reference[finite], atol=1e-5)
    assert (logits.softmax(-1)[~finite] == 0).all()  # masked candidates take no probability
    single = lik.logits(x[:, 0], y, 'g', valid=valid)  # one query per sample: [B, K]
    assert torch.allclose(single, logits[:, 0])


def test_index_targets_per_sample_equal_cross_entropy_by_hand():
    lik, x, y, valid = _setup(1)
    targets = torch.tensor([[0, 5, 2, -100], [1, 3, -100, 0], [2, 0, 1, 1]])
    loss = lik.loss(x, y, targets, 'g', weight=2.0, valid=valid)
    reference = _reference_logits(lik, x, y, valid, 'g')
    terms = [-reference[b, q].log_softmax(-1)[t] for b in range(3) for q in range(4)
             if (t := int(targets[b, q])) != -100]
    assert torch.allclose(loss, 2.0 * torch.stack(terms).mean(), atol=1e-5)


@pytest.mark.parametrize('mode', ['any', 'all'])
def test_several_positives_per_query_match_a_hand_written_reference(mode):
    lik, x, y, valid = _setup(2)
    positives = torch.zeros(3, 4, 6, dtype=torch.bool)
    positives[0, 0, [1, 3]] = True
    positives[0, 1, 5] = True
    positives[1, 2, [0, 1, 2]] = True
    positives[1, 3, 5] = True  # only an invalid candidate: the query is ignored
    positives[2, 0, [0, 2]] = True
    loss = lik.loss(x, y, positives, 'g', valid=valid, multi_positive=mode)
    reference = _reference_logits(lik, x, y, valid, 'g')
    terms = []
    for b in range(3):
        for q in range(4):
            pos = [k for k in range(6) if positives[b, q, k] and valid[b, k]]
            if not pos:
                continue
            probs = reference[b, q].softmax(-1)
            terms.append(-probs[pos].sum().log() if mode == 'any'
                         else -probs[pos].log().mean())
    assert len(terms) == 4
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)


def test_no_positive_in_the_batch_is_a_zero_loss_that_keeps_the_graph():
    lik, x, y, valid = _setup()
    x.requires_grad_(True)
    loss = lik.loss(x, y, torch.zeros(3, 4, 6, dtype=torch.bool), 'g', valid=valid)
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None


def test_predict_per_sample_never_picks_a_masked_candidate():
    lik, x, y, valid = _setup(3)
    y[2, 5] = x[2, 0] * 10  # the best match of query (2, 0), but masked out
    scores, index = lik.predict(x, y, 'g', topk=2, valid=valid)
    assert index.shape == (3, 4, 2) and (index[2] < 3).all() and (index[1] < 4).all()


def test_shapes_that_do_not_fit_say_so():
    lik, x, y, valid = _setup()
    with pytest.raises(ValueError, match=r'valid must be \[B, K\]'):
        lik.logits(x, y, 'g', valid=valid[:, :3])
    with pytest.raises(ValueError, match='need x of shape'):
        lik.logits(x[:2], y, 'g')
    with pytest.raises(ValueError, match="logits' shape"):
        lik.loss(x, y, torch.zeros(3, 4, 5, dtype=torch.bool), 'g')


def test_checkpoints_with_0d_scales_still_load():
    """The scales were 0-d tensors before FSDP2 support made them 1-element vectors."""
    lik = UnifiedLikelihood(groups=('a', 'b'))
    old = {'log_scale.a': torch.tensor(1.5), 'log_scale.b': torch.tensor(-0.5)}
    lik.load_state_dict(old)
    assert lik.log_scale['a'].shape == (1,) and lik.scale('a').shape == ()
    assert float(lik.scale('a')) == pytest.approx(math.exp(1.5))
    assert float(lik.scale('b')) == pytest.approx(math.exp(-0.5))
