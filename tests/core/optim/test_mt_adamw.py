"""MT-AdamW against a reference written straight from the paper's equations."""

import copy
import math

import pytest
import torch

from up2core.optim import MTAdamW


def reference_step(params, grads, state, task_ratio, task_weight, lr, paper_b1, paper_b2, eps,
                   weight_decay, per_tensor=False, max_coefficient=1.0):
    """The paper's update, in its own convention (b multiplies the NEW gradient), in float64."""
    if per_tensor:
        norms = [g.norm() for g in grads]
    else:
        total = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
        norms = [total] * len(grads)
    state['t'] = state.get('t', 0) + 1
    t = state['t']
    for i, (p, grad) in enumerate(zip(params, grads)):
        g = task_weight * grad / norms[i]
        m, n = state.setdefault(('m', i), torch.zeros_like(p)), state.setdefault(
            ('n', i), torch.zeros_like(p))
        m = (1 - paper_b1) * m + min(paper_b1 / task_ratio, max_coefficient) * g
        n = (1 - paper_b2) * n + min(paper_b2 / task_ratio, max_coefficient) * g * g
        state[('m', i)], state[('n', i)] = m, n
        m_hat, n_hat = m / (1 - (1 - paper_b1) ** t), n / (1 - (1 - paper_b2) ** t)
        p.mul_(1 - lr * weight_decay)
        p.sub_(lr * m_hat / (n_hat.sqrt() + eps))


@pytest.mark.parametrize('per_tensor', [False, True])
def test_matches_the_reference_over_many_steps_with_changing_tasks(per_tensor):
    torch.manual_seed(0)
    shapes = [(5, 3), (7,), (2, 2, 2)]
    params = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    ref_params = [p.detach().clone() for p in params]
    optimizer = MTAdamW(params, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05,
                        grad_norm='per_tensor' if per_tensor else 'global')
    tasks = {'cls': (0.6, 1.0), 'ret': (0.3, 2.0), 'cap': (0.1, 0.5)}
    ref_state: dict = {}
    generator = torch.Generator().manual_seed(1)
    for step in range(60):
        name = list(tasks)[int(torch.randint(3, (1,), generator=generator))]
        ratio, weight = tasks[name]
        grads = [torch.randn(s, dtype=torch.float64, generator=generator) * (1 + step % 5)
                 for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optimizer.set_task(name, ratio, weight)
        optimizer.step()
        reference_step(ref_params, grads, ref_state, ratio, weight, lr=1e-2, paper_b1=0.1,
                       paper_b2=0.01, eps=1e-8, weight_decay=0.05, per_tensor=per_tensor)
    for p, r in zip(params, ref_params):
        torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)


def test_single_task_with_ratio_one_is_adamw_on_normalised_gradients():
    torch.manual_seed(0)
    a = torch.randn(6, requires_grad=True, dtype=torch.float64)
    b = a.detach().clone().requires_grad_(True)
    mt = MTAdamW([a], lr=1e-2, betas=(0.9, 0.999), weight_decay=0.1)
    adamw = torch.optim.AdamW([b], lr=1e-2, betas=(0.9, 0.999), weight_decay=0.1)
    for _ in range(20):
        grad = torch.randn(6, dtype=torch.float64)
        a.grad = grad.clone()
        b.grad = grad / grad.norm()
        mt.step()
        adamw.step()
    torch.testing.assert_close(a, b)


def test_rarely_sampled_task_coefficient_is_clipped():
    p = torch.zeros(3, requires_grad=True)
    optimizer = MTAdamW([p], betas=(0.9, 0.999))
    optimizer.set_task('rare', sampling_ratio=0.05)
    assert optimizer.coefficient(0.9) == 1.0  # (1 - 0.9) / 0.05 = 2 would overshoot
    assert optimizer.coefficient(0.999) == pytest.approx(0.02)
    with pytest.raises(ValueError, match='sampling_ratio'):
        optimizer.set_task('bad', sampling_ratio=0.0)


def test_weight_decay_is_decoupled_and_applies_without_gradient_signal():
    p = torch.ones(4, requires_grad=True)
    optimizer = MTAdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = torch.full((4,), 1e-30)  # normalised to a unit vector: a fixed-size step
    optimizer.step()
    # decay shrinks by lr * wd = 5 %, then Adam's first step moves by lr along the sign
    torch.testing.assert_close(p.detach(), torch.full((4,), 0.95 - 0.1), atol=1e-6, rtol=0)


def test_state_dict_round_trip_is_exact():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = MTAdamW(model.parameters(), lr=1e-2)
    for name, ratio in (('a', 0.5), ('b', 0.25), ('a', 0.5)):
        model(torch.randn(2, 4)).sum().backward()
        optimizer.set_task(name, ratio, 1.5)
        optimizer.step()
        optimizer.zero_grad()
    saved = copy.deepcopy(optimizer.state_dict())
    clone_model = copy.deepcopy(model)
    clone = MTAdamW(clone_model.parameters(), lr=1e-2)
    clone.load_state_dict(saved)
    assert (clone.task, clone.sampling_ratio, clone.loss_weight) == ('a', 0.5, 1.5)
    for opt, mod in ((optimizer, model), (clone, clone_model)):
        mod(torch.ones(2, 4)).sum().backward()
        opt.step()
    for p, q in zip(model.parameters(), clone_model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize('ratios', [(0.5, 0.5), (0.6, 0.3, 0.1), (0.2,) * 5, (0.4, 0.3, 0.1, 0.1,
                                                                             0.05, 0.05)])
def test_normalised_coefficients_average_to_adamws_and_keep_every_task_pushing_equally(ratios):
    p = torch.zeros(3, requires_grad=True)
    for normalize in (False, True):
        optimizer = MTAdamW([p], betas=(0.9, 0.999), normalize_coefficients=normalize)
        pushes, expected = [], 0.0
        for k, ratio in enumerate(ratios):
            optimizer.set_task(str(k), ratio, num_tasks=len(ratios))
            coefficient = optimizer.coefficient(0.999)
            pushes.append(ratio * coefficient)  # how hard task k pushes per step, on average
            expected += ratio * coefficient
        # no hidden starvation: a rarely drawn task pushes as hard as a frequent one
        assert max(pushes) == pytest.approx(min(pushes))
        target = 0.001 if normalize else 0.001 * len(ratios)
        assert expected == pytest.approx(target)  # AdamW's (1 - beta), or K times it


def test_normalised_coefficients_match_the_reference_with_k_in_the_denominator():
    torch.manual_seed(0)
    params = [torch.randn(4, dtype=torch.float64, requires_grad=True)]
    ref = [params[0].detach().clone()]
    optimizer = MTAdamW(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.0,
                        normalize_coefficients=True)
    tasks = {'a': 0.5, 'b': 0.3, 'c': 0.2}
    state: dict = {}
    for step in range(30):
        name = 'abc'[step % 3]
        grad = torch.randn(4, dtype=torch.float64)
        params[0].grad = grad.clone()
        optimizer.set_task(name, tasks[name], 1.0, num_tasks=3)
        optimizer.step()
        reference_step(ref, [grad], state, tasks[name] * 3, 1.0, lr=1e-2, paper_b1=0.1,
                       paper_b2=0.01, eps=1e-8, weight_decay=0.0)
    torch.testing.assert_close(params[0].detach(), ref[0], rtol=1e-10, atol=1e-12)
