"""Predictions drawn during training: see the model learn, validation after validation.

:class:`PredictionsHook` (in every config's default runtime) answers a fixed handful of val
images with every task the model has, after each validation of a training run, and draws them
as ``up2 infer --out`` does (:func:`up2core.apis.visualization.draw_results`: boxes and masks
drawn by the tasks, the other tasks' answers as text below) into
``<work_dir>/predictions/step_<N>/``, and to the run's trackers (``--vis``) as images at that
step.  Tasks that need an input an image does not carry (retrieval ranks given texts:
``Task.infer_requires``) are left out; a model without UP2 tasks is not drawn.

The hook lives with the inference API it calls (it is a user of :mod:`up2core.apis`, which the
engine layer below must not import) and is registered in ``HOOKS`` from here.

Examples:
    >>> custom_hooks = [dict(type='PredictionsHook', num_images=2)]   # 0: none
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log

from up2core.registry import HOOKS


@HOOKS.register_module()
class PredictionsHook(Hook):
    """Draw every task's answer on ``num_images`` val images after each validation.

    Args:
        num_images: how many (the first ones of the val sets, taken in turn from each task's,
            so every task's own images are among them); 0 draws nothing.
        folder: where the drawings go, under the work dir.
    """

    priority = 'LOW'

    def __init__(self, num_images: int = 4, folder: str = 'predictions') -> None:
        if num_images < 0:
            raise ValueError(f'num_images must be >= 0, got {num_images}')
        self.num_images = num_images
        self.folder = folder
        self._images: list[str] | None = None
        self._training = False

    def before_train(self, runner) -> None:
        self._training = True

    def after_train(self, runner) -> None:
        self._training = False

    def chosen_images(self, runner) -> list[str]:
        """The images drawn at every validation: each task's val set in turn, first ones
        first, without repeats (tasks that share images share them here too)."""
        if self._images is None:
            loaders = getattr(getattr(runner.val_loop, 'dataloader', None), 'loaders', {})
            lists = []
            for loader in loaders.values():
                dataset = loader.dataset
                paths = []
                for index in range(min(len(dataset), self.num_images)):
                    path = dataset.get_data_info(index).get('img_path')
                    if path:
                        paths.append(str(path))
                lists.append(paths)
            chosen: list[str] = []
            for rank in range(self.num_images):
                for paths in lists:
                    if rank < len(paths) and paths[rank] not in chosen:
                        chosen.append(paths[rank])
            self._images = chosen[:self.num_images]
        return self._images

    def after_val_epoch(self, runner, metrics=None) -> None:
        if runner.rank != 0 or not self._training or not self.num_images:
            return
        import torch
        from PIL import Image

        from up2core.apis.inference import iter_inference, runnable_tasks
        from up2core.apis.visualization import draw_results

        model = getattr(runner.model, 'module', runner.model)
        if not getattr(model, 'tasks', None):  # a model of another kind (a user's own, a toy)
            return
        images = self.chosen_images(runner)
        tasks = runnable_tasks(model, list(model.tasks), {})
        if not images or not tasks:
            return
        out = Path(runner.work_dir) / self.folder / f'step_{runner.iter:06d}'
        training = model.training
        had_cfg = hasattr(model, 'cfg')
        if not had_cfg:
            model.cfg = runner.cfg  # (the inference API reads each task's test pipeline)
        model.eval()
        try:
            with torch.no_grad():
                answers = list(iter_inference(model, images, tasks, batch_size=len(images)))
            failed_trackers: dict[str, Exception] = {}
            for index, (name, array, samples) in enumerate(answers):
                if isinstance(samples, str):  # an image that could not be answered
                    print_log(f'PredictionsHook: {samples}', logger='current',
                              level=logging.WARNING)
                    continue
                path = out / f'{index:02d}_{Path(name).stem}.jpg'
                draw_results(model, array, samples, str(path))
                with Image.open(path) as picture:
                    drawn = np.asarray(picture.convert('RGB'))
                tag = f'predictions/{index:02d}_{Path(name).stem}'
                # (each backend in turn: Visualizer.add_image would stop at the first that fails)
                for backend in runner.visualizer._vis_backends.values():
                    try:  # one tracker that cannot take a picture must not cost the others theirs
                        backend.add_image(tag, drawn, step=runner.iter)
                    except Exception as exc:
                        failed_trackers.setdefault(type(backend).__name__, exc)
            for backend, exc in failed_trackers.items():
                print_log(f'PredictionsHook: {backend} took no pictures at step {runner.iter} '
                          f'({type(exc).__name__}: {exc}); they are in {out}', logger='current',
                          level=logging.WARNING)
        except Exception as exc:  # a picture must never stop the training it illustrates
            print_log(f'PredictionsHook: no predictions drawn at step {runner.iter} '
                      f'({type(exc).__name__}: {exc}); training goes on', logger='current',
                      level=logging.WARNING)
        finally:
            model.train(training)
            if not had_cfg:
                del model.cfg
