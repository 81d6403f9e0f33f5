import pytest
import torch
from mmengine.optim import OptimWrapper

from up2core.engine.nonfinite import NonFiniteGuard
from up2core.errors import NonFiniteTrainingError


def _setup(max_steps=2, clip=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                           clip_grad=clip)
    where = {'iter': 0, 'task': 'retrieval'}
    guard = NonFiniteGuard(max_steps, where=lambda: (where['iter'], where['task']))
    guard.install(wrapper)
    return model, wrapper, guard, where


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_a_finite_step_updates_the_weights():
    model, wrapper, guard, _ = _setup()
    before = _params(model)
    wrapper.update_params(model(torch.ones(2, 3)).sum())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not guard.skipped


@pytest.mark.parametrize('poison', ['loss', 'gradient'])
def test_a_non_finite_step_is_skipped_and_counted_with_its_task(poison):
    model, wrapper, guard, where = _setup()
    before = _params(model)
    handle = model.weight.register_hook(lambda g: g * float('inf')) if poison == 'gradient' \
        else None  # a finite loss with an infinite gradient
    out = model(torch.ones(2, 3)).sum()
    wrapper.update_params(out * float('nan') if poison == 'loss' else out)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert guard.skipped == {'retrieval': 1}
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # zeroed
    # and the next finite step trains normally
    if handle is not None:
        handle.remove()
    wrapper.update_params(model(torch.ones(2, 3)).sum())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_too_many_skips_stop_the_run_with_the_tasks_counted():
    model, wrapper, guard, where = _setup(max_steps=2)
    for i, task in enumerate(['retrieval', 'classification', 'retrieval']):
        where.update(iter=i, task=task)
        loss = model(torch.ones(2, 3)).sum() * float('nan')
        if i < 2:
            wrapper.update_params(loss)
        else:
            with pytest.raises(NonFiniteTrainingError, match=r'3 steps had a non-finite loss or '
                               r'gradient \(retrieval: 2, classification: 1\); the last at '
                               r'iteration 3.*train_cfg.max_nonfinite_steps'):
                wrapper.update_params(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_installing_twice_keeps_one_guard():
    model, wrapper, first, _ = _setup()
    second = NonFiniteGuard(5, where=lambda: (0, 'x'))
    second.install(wrapper)
    wrapper.update_params(model(torch.ones(2, 3)).sum() * float('inf'))
    assert second.skipped == {'x': 1} and not first.skipped
