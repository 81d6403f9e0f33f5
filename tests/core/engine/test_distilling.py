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
