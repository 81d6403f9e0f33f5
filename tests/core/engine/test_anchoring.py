"""AnchorHook: after each step the trained weights move back towards their start, by the share
the schedule's learning rate gives."""

from types import SimpleNamespace

import pytest
import torch

from up2core.engine.anchoring import AnchorHook


def _runner(lr, peak=1e-3):
    model = torch.nn.Linear(3, 2)
    frozen = torch.nn.Linear(3, 2)
    frozen.requires_grad_(False)
    model.frozen = frozen
    cfg = SimpleNamespace(optim_wrapper=SimpleNamespace(optimizer=SimpleNamespace(lr=peak)))
    wrapper = SimpleNamespace(get_lr=lambda: {'lr': [lr]})
    return SimpleNamespace(model=model, cfg=cfg, optim_wrapper=wrapper)


@pytest.mark.parametrize('strength, lr, kept', [(1.0, 1e-3, 0.0), (0.5, 1e-3, 0.5),
                                                (0.5, 5e-4, 0.75), (0.0, 1e-3, 1.0)])
def test_the_pull_undoes_strength_times_the_lr_share_of_the_move(strength, lr, kept):
    runner = _runner(lr)
    hook = AnchorHook(strength)
    hook.before_train(runner)
    start = runner.model.weight.detach().clone()
    frozen = runner.model.frozen.weight.detach().clone()
    with torch.no_grad():  # a step moved every weight; the frozen one moved by hand
        runner.model.weight.add_(1.0)
        runner.model.frozen.weight.add_(1.0)
    hook.after_train_iter(runner, 0)
    assert torch.allclose(runner.model.weight, start + kept)
    assert torch.allclose(runner.model.frozen.weight, frozen + 1.0)  # not trained: not anchored


def test_a_strength_outside_0_1_is_refused():
    with pytest.raises(ValueError, match='strength must lie in'):
        AnchorHook(1.5)
