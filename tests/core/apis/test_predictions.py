"""PredictionsHook: which val images are drawn at every validation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from up2core.apis.predictions import PredictionsHook


class _Dataset:
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, index):
        return {'img_path': self.paths[index]}


def _runner(**sets):
    loaders = {task: SimpleNamespace(dataset=_Dataset(paths)) for task, paths in sets.items()}
    return SimpleNamespace(val_loop=SimpleNamespace(dataloader=SimpleNamespace(loaders=loaders)))


def test_each_tasks_own_images_are_among_the_drawn_ones_once_each():
    runner = _runner(detection=['d0', 'd1', 'd2'], segmentation=['d0', 'd1', 'd2'],
                     classification=['c0', 'c1'])
    hook = PredictionsHook(num_images=4)
    assert hook.chosen_images(runner) == ['d0', 'c0', 'd1', 'c1']
    runner.val_loop.dataloader.loaders.clear()  # chosen once: the same at every validation
    assert hook.chosen_images(runner) == ['d0', 'c0', 'd1', 'c1']
    assert PredictionsHook(num_images=2).chosen_images(_runner(a=['x'], b=['x', 'y'])) == \
        ['x', 'y']


def test_none_asked_draws_nothing_and_a_negative_count_is_refused(tmp_path):
    hook = PredictionsHook(num_images=0)
    hook.before_train(None)
    hook.after_val_epoch(SimpleNamespace(rank=0, work_dir=str(tmp_path)), {})
    assert not (tmp_path / 'predictions').exists()
    with pytest.raises(ValueError, match='num_images must be >= 0'):
        PredictionsHook(num_images=-1)


def test_a_model_without_up2_tasks_is_left_alone(tmp_path):
    import torch

    hook = PredictionsHook(num_images=2)
    hook.before_train(None)
    runner = _runner(a=['x'])
    runner.rank, runner.work_dir, runner.model = 0, str(tmp_path), torch.nn.Linear(1, 1)
    hook.after_val_epoch(runner, {})  # a user's own model: no tasks to answer with
    assert not (tmp_path / 'predictions').exists()
