"""Inference: any task's prediction, or every task's at once, on one image or many.

Examples:
    >>> from up2core.apis import init_model, inference
    >>> model = init_model('up2_tiny_shapes_generalist', 'work_dirs/demo/iter_260.pth')
    >>> inference(model, 'photo.png', task='classification')          # doctest: +SKIP
    {'task': 'classification', 'classes': ['circle', ...], 'scores': [0.93, ...], ...}
    >>> inference(model, 'photo.png', tasks='all')                      # doctest: +SKIP
    {'image': 'photo.png', 'results': {'classification': {...}, 'detection': {...}, ...}}
    >>> inference(model, 'photos/', tasks='all', batch_size=16)        # doctest: +SKIP
    [{'image': 'photos/a.png', 'results': {...}}, {'image': 'photos/b.jpg', 'error': '...'}]

Every task with ``tasks='all'`` (or a list): an image is read once; each task's pipeline
prepares it, and tasks whose pipelines give the same input tensor (all the built-in tasks of a
tiny config do) share ONE encoding, backbone and region proposals, under
:meth:`UP2Generalist.shared_encoding`, which also shares the decoder passes of identical inputs
(classification, retrieval, detection and segmentation decode the same image segments).
Candidate embeddings (class names, vocabulary) are cached by the tasks once per loaded model.
A task whose ``infer`` needs an argument that was not given (retrieval without ``texts``) is left
out of an all-task call.
"""

from __future__ import annotations

import glob
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint

from up2core.config import load_config
from up2core.engine.checkpoint import allow_mmengine_checkpoints, verify_checkpoint
from up2core.errors import DataError, UserError
from up2core.registry import MODELS

#: file extensions a folder of images is searched for
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def init_model(config, checkpoint: str | None = None, device: str = 'cpu',
               cfg_options: list[str] | dict | None = None, data: str | None = None,
               partial: bool = False):
    """Build the generalist of ``config`` (path or packaged name) and load ``checkpoint``.

    Args:
        data: a dataset file (``--data``): the tasks and names of the user's data.
        partial: load a checkpoint that does not fit the config exactly (what fits); by
            default such a checkpoint is a :class:`~up2core.errors.CheckpointError`
            (:func:`~up2core.engine.checkpoint.check_fits`).

    The checkpoint's record of its data (:func:`~up2core.engine.data_card.read_card`), when
    it has one, is ``model.card``.
    """
    cfg = load_config(config, cfg_options)
    if data is not None:
        from up2core.data.dataset_file import apply_data_file, load_data_file

        apply_data_file(cfg, load_data_file(data), need=(), quiet=True)
    cfg.setdefault('default_scope', 'up2core')
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.card = None
    if checkpoint is not None:
        from up2core.engine.checkpoint import check_fits
        from up2core.engine.data_card import read_card

        loaded = verify_checkpoint(checkpoint, check_finite=True)  # names the file and fault
        report = check_fits(model, checkpoint, partial=partial)
        allow_mmengine_checkpoints()
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
        model.card = read_card(loaded)
        if report.untrained_tasks and len(report.untrained_tasks) < len(model.tasks):
            # trained without them (--tasks): answering them would be answering at random
            warnings.warn(f"{checkpoint} was trained without task(s) "
                          f"{', '.join(report.untrained_tasks)}: left out", stacklevel=2)
            for task in report.untrained_tasks:
                del model.tasks[task]
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


def _array_pipeline(model, task: str) -> Compose:
    """The task's test pipeline for an image already read into a BGR array: without loading
    the file (the image is read once for every task) and without loading annotations (a new
    image has none)."""
    cache = model.__dict__.setdefault('_up2_infer_pipelines', {})
    if task not in cache:
        steps = [t for t in _test_pipeline(model, task)
                 if not any(name in str(t.get('type', ''))
                            for name in ('LoadAnnotations', 'LoadImageFromFile'))]
        cache[task] = Compose(steps)
    return cache[task]


def expand_images(specs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Image paths from files, folders (their image files, sorted, not recursive) and glob
    patterns, in the order given.

    Raises:
        FileNotFoundError: a path that does not exist, or a pattern or folder with no image.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    paths: list[str] = []
    for spec in map(str, specs):
        if Path(spec).is_dir():
            found = sorted(str(p) for p in Path(spec).iterdir()
                           if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise FileNotFoundError(f"folder '{spec}' holds no image file "
                                        f"({', '.join(IMAGE_EXTENSIONS)})")
            paths += found
        elif Path(spec).exists():
            paths.append(spec)
        elif glob.has_magic(spec):
            found = sorted(glob.glob(spec))
            if not found:
                raise FileNotFoundError(f"pattern '{spec}' matches no file")
            paths += found
        else:
            raise FileNotFoundError(f"image '{spec}' not found")
    return paths


def read_image(image: str | np.ndarray) -> np.ndarray:
    """A path or an HxW(x3/4) array -> an HxWx3 BGR uint8 array.

    Raises:
        DataError: the file is not a readable image (names the file).
    """
    if isinstance(image, np.ndarray):
        array = image
    else:
        import mmcv

        try:
            array = mmcv.imread(str(image), channel_order='bgr')
        except Exception as exc:  # mmcv raises various errors on broken files
            raise DataError(f"could not read image '{image}' ({type(exc).__name__}: {exc}); is "
                            f"it a valid image file?") from exc
        if array is None:
            raise DataError(f"could not read image '{image}'; is it a valid image file?")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.shape[2] == 4:
        array = array[..., :3]
    return np.ascontiguousarray(array)


def resolve_tasks(model, tasks: str | Sequence[str] | None) -> list[str]:
    """``'all'`` (or None) -> every task of the model; a name or a list -> checked names."""
    if tasks is None or tasks == 'all':
        return list(model.tasks)
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in names if t not in model.tasks]
    if unknown:
        raise KeyError(f"task '{unknown[0]}' is not in this model; it has {list(model.tasks)}")
    return names


def runnable_tasks(model, tasks: Sequence[str], given: dict[str, Any]) -> list[str]:
    """The tasks whose ``infer`` has what it requires (:attr:`Task.infer_requires`)."""
    return [t for t in tasks
            if all(given.get(arg) for arg in getattr(model.tasks[t], 'infer_requires', ()))]


def _prepare(model, tasks: Sequence[str], name: str, array: np.ndarray) -> dict[str, dict]:
    data = dict(img=array, img_shape=array.shape[:2], ori_shape=array.shape[:2],
                img_path=name)
    prepared = {}
    for task in tasks:
        try:
            prepared[task] = _array_pipeline(model, task)(dict(data))
        except Exception as exc:
            raise DataError(f"could not prepare image '{name}' for task '{task}' "
                            f"({type(exc).__name__}: {exc})") from exc
    return prepared


@torch.no_grad()
def _predict(model, tasks: Sequence[str], samples: list[dict[str, dict]],
             infer_kwargs: dict[str, Any], timings: dict[str, float] | None = None
             ) -> list[dict[str, Any]]:
    """Every task's predicted sample for a batch of prepared images (same input size), under
    one shared encoding: tasks with equal input tensors pass the very same tensor.

    ``timings``, when given, receives the seconds of the image encoding (``'encoding'``:
    backbone and proposals, shared by the tasks) and of each task after it."""
    out: list[dict[str, Any]] = [{} for _ in samples]
    with model.shared_encoding():
        seen: list[torch.Tensor] = []
        for task in tasks:
            batch = model.data_preprocessor(pseudo_collate([s[task] for s in samples]), False)
            inputs = batch['inputs']
            for earlier in seen:
                if earlier.shape == inputs.shape and torch.equal(earlier, inputs):
                    inputs = earlier
                    break
            else:
                seen.append(inputs)
                if timings is not None:
                    start = time.perf_counter()
                    model.encode_image(inputs)  # kept by shared_encoding for the tasks
                    timings['encoding'] = timings.get('encoding', 0.0) + \
                        time.perf_counter() - start
            start = time.perf_counter()
            predicted = model.tasks[task].infer(model, inputs, batch['data_samples'],
                                                **infer_kwargs)
            if timings is not None:
                timings[task] = timings.get(task, 0.0) + time.perf_counter() - start
            for row, sample in zip(out, predicted):
                row[task] = sample
    return out


def _unanswered(name: str, tasks: Sequence[str]) -> str:
    """The message of an image that was read and prepared but that the model failed on (the
    exception in progress): named, with the error, so a folder run reports it and goes on."""
    kind, error = sys.exc_info()[:2]
    return (f"could not answer image '{name}' ({', '.join(tasks)}): "
            f"{getattr(kind, '__name__', 'error')}: {error}; this is a bug of UP2 or of a "
            f"task plugin: please report it with the image")


def iter_inference(model, images: Iterable[str | np.ndarray], tasks: Sequence[str],
                   batch_size: int = 8, timings: dict[str, float] | None = None,
                   **infer_kwargs: Any
                   ) -> Iterator[tuple[str, np.ndarray | None, dict[str, Any] | str]]:
    """Predict ``tasks`` for each image, in batches; yields ``(name, image, samples)`` in input
    order, ``samples`` a dict task -> predicted data sample, or ``(name, None, message)`` for an
    image that could not be read or prepared (the others go on).  ``timings`` (a dict) adds up
    the seconds of the shared image encoding and of each task (see :func:`_predict`).

    Images of one batch with different input sizes are run in groups of equal size, so a
    result never depends on the other images of its batch (no padding to a common size).
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    pending: list[tuple[str, np.ndarray, dict[str, dict]]] = []

    def flush() -> Iterator:
        groups: dict[tuple, list[int]] = {}
        for index, (_, _, prepared) in enumerate(pending):
            key = tuple((t, tuple(p['inputs'].shape)) for t, p in prepared.items())
            groups.setdefault(key, []).append(index)
        results: dict[int, dict[str, Any] | str] = {}
        for rows in groups.values():
            try:
                predicted = _predict(model, tasks, [pending[i][2] for i in rows],
                                     infer_kwargs, timings)
            except UserError:
                raise  # the request is wrong (e.g. --classes), not this batch's images
            except Exception:
                if len(rows) == 1:
                    results[rows[0]] = _unanswered(pending[rows[0]][0], tasks)
                    continue
                # one image must not take its batch down: each alone, to find which
                for row in rows:
                    try:
                        (results[row],) = _predict(model, tasks, [pending[row][2]],
                                                   infer_kwargs, timings)
                    except UserError:
                        raise
                    except Exception:
                        results[row] = _unanswered(pending[row][0], tasks)
                continue
            results.update(zip(rows, predicted))
        for index, (name, array, _) in enumerate(pending):
            answer = results[index]
            yield name, (None if isinstance(answer, str) else array), answer
        pending.clear()

    for index, image in enumerate(images):
        name = f'<array {index}>' if isinstance(image, np.ndarray) else str(image)
        try:
            array = read_image(image)
            prepared = _prepare(model, tasks, name, array)
        except DataError as exc:
            yield from flush()
            yield name, None, str(exc)
            continue
        pending.append((name, array, prepared))
        if len(pending) == batch_size:
            yield from flush()
    yield from flush()


def result_of(model, task: str, sample) -> dict:
    """A predicted sample as the plain dict the API returns (``task`` first)."""
    return {'task': task, **model.tasks[task].to_result(sample)}


def record_of(model, name: str, samples: dict[str, Any] | str) -> dict:
    """One image's entry of an all-task call: ``image`` and ``results`` (task -> the task's
    plain dict, without ``task``), or ``image`` and ``error``."""
    if isinstance(samples, str):
        return {'image': name, 'error': samples}
    return {'image': name, 'results': {task: model.tasks[task].to_result(sample)
                                       for task, sample in samples.items()}}


def inference(model, image, task: str | None = None, texts: list[str] | None = None,
              out_file: str | None = None, *, tasks: str | Sequence[str] | None = None,
              batch_size: int = 8, **kwargs: Any):
    """Predict one task, or several, for one image or many.

    Args:
        image: a path, an HxWx3 BGR uint8 array, or (for several images) a list of them, a
            folder or a glob pattern.
        task: one task (the result is that task's plain dict with ``task``).
        tasks: ``'all'`` or a list of tasks: every image's entry is ``{'image', 'results'}``
            (``results`` maps task -> plain dict), or ``{'image', 'error'}`` for an image that
            could not be read.  Default when ``task`` is not given: ``'all'`` (a one-task
            model: that task).
        texts: candidate texts to rank (retrieval; without them an all-task call leaves
            retrieval out).
        out_file: one image only: save the visualisation (the task's drawing, or for several
            tasks one picture with every task's output) to this file.
        batch_size: images per forward pass (several images).
        **kwargs: for the tasks' ``infer``: ``classes=[...]`` (detection, segmentation),
            ``beam=3`` (captioning).

    Returns:
        one result (a single image) or a list of results (a list, folder or pattern).
    """
    many = not isinstance(image, np.ndarray) and (
        isinstance(image, (list, tuple)) or Path(str(image)).is_dir()
        or (not Path(str(image)).exists() and glob.has_magic(str(image))))
    if task is not None and tasks is not None:
        raise ValueError('give task (one) or tasks (several), not both')
    single_task = task is not None or (tasks is None and len(model.tasks) == 1)
    names = resolve_tasks(model, task if task is not None else tasks)
    given = dict(kwargs, texts=texts)
    if not single_task:
        names = runnable_tasks(model, names, given)
    elif task is not None and not runnable_tasks(model, names, given):
        missing = [a for a in model.tasks[task].infer_requires if not given.get(a)]
        raise ValueError(f"{task} inference needs {', '.join(missing)} "
                         f"(e.g. candidate texts to rank: --texts ...)")
    if many:
        if out_file is not None:
            raise ValueError('out_file draws one image; for many, use the CLI\'s --out DIR')
        paths = expand_images(list(image) if isinstance(image, (list, tuple)) else image)
        out = []
        for name, _, samples in iter_inference(model, paths, names, batch_size, **given):
            if single_task and isinstance(samples, str):
                out.append({'image': name, 'error': samples})
            elif single_task:
                out.append(result_of(model, names[0], samples[names[0]]))
            else:
                out.append(record_of(model, name, samples))
        return out
    if not isinstance(image, np.ndarray) and not Path(str(image)).is_file():
        raise FileNotFoundError(f"image '{image}' not found")
    ((name, array, samples),) = list(iter_inference(model, [image], names, 1, **given))
    if isinstance(samples, str):
        raise DataError(samples)
    if out_file is not None:
        from up2core.apis.visualization import draw_results

        draw_results(model, array, samples, out_file)
    if single_task:
        return result_of(model, names[0], samples[names[0]])
    return record_of(model, name, samples)


__all__ = ['IMAGE_EXTENSIONS', 'expand_images', 'inference', 'init_model', 'iter_inference',
           'read_image', 'record_of', 'resolve_tasks', 'result_of', 'runnable_tasks']
