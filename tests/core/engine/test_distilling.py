"""DistillationHook: the model's frozen copy, given at the start of training, taken back at
the end."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.plugins.conftest import tiny_model
from up2core.engine.distilling import DistillationHook

CLASSES = dict(classification=dict(type='classification', class_names=['cat', 'dog', 'bird']))


def test_the_hook_gives_the_teacher_at_the_start_and_takes_it_back_at_the_end():
    model = tiny_model(CLASSES)
    runner = SimpleNamespace(model=model)
    hook = DistillationHook(weight=2.0)
    hook.before_train(runner)
    assert model.distillation.weight == 2.0
    teacher = model.distillation.teacher
    assert teacher.distillation is None and teacher is not model
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(),
                                                  model.state_dict().values()))
    hook.after_train(runner)
    assert model.distillation is None
    with pytest.raises(TypeError, match='needs an UP2 model'):
        hook.before_train(SimpleNamespace(model=torch.nn.Linear(2, 2)))


def test_a_weight_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match='weight must be > 0'):
        DistillationHook(weight=0)


def test_the_hook_passes_the_tasks_on_and_refuses_patterns_that_match_no_task():
    model = tiny_model(CLASSES)
    runner = SimpleNamespace(model=model)
    DistillationHook(weight=1.0, tasks=['class*']).before_train(runner)
    assert model.distillation.tasks == ('class*',)
    assert model.distillation.covers('classification')
    model.distillation = None
    with pytest.raises(ValueError, match="match none of the model's tasks"):
        DistillationHook(weight=1.0, tasks=['replay_*']).before_train(runner)
    with pytest.raises(ValueError, match='list of task-name patterns'):
        DistillationHook(weight=1.0, tasks='replay_*')


def test_every_k_the_teacher_runs_on_one_step_in_k():
    model = tiny_model(CLASSES)
    runner = SimpleNamespace(model=model, iter=0)
    hook = DistillationHook(weight=1.0, every=3)
    hook.before_train(runner)
    active = []
    for step in range(7):
        runner.iter = step
        hook.before_train_iter(runner, batch_idx=step)
        active.append(model.distillation.active)
    assert active == [True, False, False, True, False, False, True]
    for every in (0, 1.5):
        with pytest.raises(ValueError, match='every must be an integer'):
            DistillationHook(weight=1.0, every=every)


def test_a_step_that_does_not_distil_runs_no_teacher():
    from mmengine.structures import BaseDataElement

    model = tiny_model(CLASSES).train()
    DistillationHook(weight=1.0).before_train(SimpleNamespace(model=model))
    model.distillation.active = False
    model.distillation.run_teacher = None  # (called, it would fail)
    samples = [BaseDataElement(metainfo=dict(task='classification'), gt_label=i) for i in (0, 1)]
    losses = model(torch.randn(2, 3, 64, 64), samples, mode='loss')
    assert 'loss_distill' not in losses and 'loss_cls' in losses
