"""Inference on single images: any task's prediction from one trained generalist.

Examples:
    >>> from up2core.apis import init_model, inference
    >>> model = init_model('up2_tiny_shapes', 'work_dirs/up2_tiny_shapes/iter_600.pth')
    >>> inference(model, 'photo.png', task='classification')          # doctest: +SKIP
    {'task': 'classification', 'classes': ['circle', ...], 'scores': [0.93, ...], ...}
    >>> inference(model, 'photo.png', task='retrieval', texts=['a red circle', 'a blue star'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint

from up2core.config import load_config
from up2core.engine.checkpoint import allow_mmengine_checkpoints, verify_checkpoint
from up2core.errors import DataError
from up2core.registry import MODELS


def init_model(config, checkpoint: str | None = None, device: str = 'cpu',
               cfg_options: list[str] | dict | None = None):
    """Build the generalist of ``config`` (path or packaged name) and load ``checkpoint``."""
    cfg = load_config(config, cfg_options)
    cfg.setdefault('default_scope', 'up2core')
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        verify_checkpoint(checkpoint, check_finite=True)  # names the file and the fault
        allow_mmengine_checkpoints()
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.cfg = cfg
    return model.to(device).eval()


def _test_pipeline(model, task: str) -> list[dict]:
    cfg = model.cfg
    for key in ('test_dataloader', 'val_dataloader'):
        loaders = cfg.get(key) or {}
        if task in loaders:
            return list(loaders[task]['dataset']['pipeline'])
    raise KeyError(f"the config has no test or val dataloader for task '{task}', so its "
                   f"pipeline is unknown")


def inference(model, image: str | np.ndarray, task: str | None = None,
              texts: list[str] | None = None, out_file: str | None = None,
              **kwargs: Any) -> dict:
    """Predict ``task`` for one image (a path, or an HxWx3 BGR uint8 array).

    Extra keyword arguments go to the task's ``infer`` (``classes=[...]`` for detection and
    segmentation, ``beam=3`` for captioning).  ``out_file`` saves the task's visualisation of
    the prediction.

    Returns the task's plain dict (:meth:`Task.to_result`) plus ``task``: for classification
    ``classes``/``labels``/``scores`` (best first); for retrieval with ``texts``, the texts ranked
    with their probabilities; for detection ``boxes``/``scores``/``labels``/``classes`` in the
    original image's pixels (and ``masks`` as COCO RLE for segmentation); for captioning the
    ``caption`` and its ``score``.
    """
    if task is None:
        if len(model.tasks) != 1:
            raise ValueError(f'the model does several tasks {list(model.tasks)}: name one')
        task = next(iter(model.tasks))
    if task not in model.tasks:
        raise KeyError(f"task '{task}' is not in this model; it has {list(model.tasks)}")
    # A new image has no annotations: loading them is the one step inference must skip.
    pipeline = [t for t in _test_pipeline(model, task)
                if 'LoadAnnotations' not in str(t.get('type', ''))]
    if isinstance(image, np.ndarray):
        pipeline = [t for t in pipeline if 'LoadImageFromFile' not in str(t['type'])]
        data = dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2])
    else:
        if not Path(image).is_file():
            raise FileNotFoundError(f"image '{image}' not found")
        data = dict(img_path=str(image))
    try:
        sample = Compose(pipeline)(data)
    except Exception as exc:  # a corrupt image surfaces here as various errors
        raise DataError(f"could not read image '{image}' ({type(exc).__name__}: {exc}); is it a "
                        f"valid image file?") from exc
    batch = model.data_preprocessor(pseudo_collate([sample]), False)
    with torch.no_grad():
        (result,) = model.tasks[task].infer(model, batch['inputs'], batch['data_samples'],
                                            texts=texts, **kwargs)
    if out_file is not None:
        import mmcv

        rgb = mmcv.imread(image, channel_order='rgb') if not isinstance(image, np.ndarray) \
            else mmcv.bgr2rgb(image)
        model.tasks[task].draw(rgb, result, out_file)
    return {'task': task, **model.tasks[task].to_result(result)}
