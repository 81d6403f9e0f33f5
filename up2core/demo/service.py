"""What the demo page asks of the model: every task on one uploaded image, as JSON to draw.

:class:`DemoService` loads the model once and answers :meth:`DemoService.predict` for any
number of callers: requests are accepted concurrently, and the model runs one image at a time
in one thread of its own (the generalist keeps the shared encoding of the image in progress on itself, so
two images may not interleave; on 2 CPU cores a second image at once would not be faster);
past :data:`MAX_WAITING` waiting requests the answer is "busy".

The answer describes each task's result by the fields of its plain result
(:meth:`Task.to_result <up2core.task.Task.to_result>`), never by the task's name, so a plugin's
task shows up too: ``boxes`` are drawn (``masks`` as a coloured overlay), ``caption`` is a
line, ``classes`` with ``scores`` a top-k table, ``texts`` with ``scores`` a ranking, and
anything else is printed as JSON.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from up2core.errors import DataError, UserError

#: largest upload accepted (bytes), and largest image (pixels): a photo fits, a bomb does not
MAX_BYTES = 10 * 2**20
MAX_PIXELS = 40_000_000
#: most class names, or candidate captions, one request may give, and the longest one: each
#: goes through the text encoder and the decoder, so 20,000 names held the model for two
#: minutes while every other user waited
MAX_NAMES = 300
MAX_NAME_CHARS = 200
#: requests that may wait for the model at once; one more is answered 503 "busy"
MAX_WAITING = 8
#: box and mask colours (RGB), by rank
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


class RequestError(ValueError):
    """A request the demo refuses (not an image, too large, bad field): shown on the page."""

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def field_list(value: str, separator: str, field: str) -> list[str]:
    """A form field's names (``separator``-separated, stripped, empty ones dropped), or a
    :class:`RequestError` when there are more than :data:`MAX_NAMES` or one is longer than
    :data:`MAX_NAME_CHARS`."""
    if len(value) > MAX_NAMES * (MAX_NAME_CHARS + 1):
        raise RequestError(f"'{field}' is {len(value)} characters; the demo takes up to "
                           f'{MAX_NAMES} names of up to {MAX_NAME_CHARS} characters', status=413)
    names = [item.strip() for item in value.split(separator) if item.strip()]
    _check_names(names, field)
    return names


def _check_names(names: list[str] | None, field: str) -> None:
    if not names:
        return
    if len(names) > MAX_NAMES:
        raise RequestError(f"'{field}' gives {len(names)} names; the demo takes up to "
                           f'{MAX_NAMES} per request (each one is encoded while other users '
                           f'wait)')
    longest = max(names, key=len)
    if len(longest) > MAX_NAME_CHARS:
        raise RequestError(f"'{field}' has a name of {len(longest)} characters; the demo takes "
                           f'names of up to {MAX_NAME_CHARS}')


def decode_image(data: bytes, name: str = 'upload') -> np.ndarray:
    """Upload bytes -> HxWx3 BGR uint8 array, or :class:`RequestError` saying why not."""
    if not data:
        raise RequestError(f"'{name}' is empty: choose an image file")
    if len(data) > MAX_BYTES:
        raise RequestError(f"'{name}' is {len(data) / 2**20:.1f} MiB; the demo takes images up "
                           f'to {MAX_BYTES // 2**20} MiB', status=413)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise RequestError(f"'{name}' is {width}x{height} pixels; the demo takes up to "
                                   f'{MAX_PIXELS // 1_000_000} megapixels', status=413)
            # turned as the camera meant it, as training and `up2 infer` read files (OpenCV
            # applies the EXIF orientation)
            rgb = np.asarray(ImageOps.exif_transpose(probe).convert('RGB'))
    except RequestError:
        raise
    except Image.DecompressionBombError:  # declared far larger still: PIL refuses to open it
        raise RequestError(f"'{name}' declares a size of over "
                           f'{2 * Image.MAX_IMAGE_PIXELS // 1_000_000} megapixels; the demo '
                           f'takes up to {MAX_PIXELS // 1_000_000} megapixels', status=413) from None
    except OSError as exc:
        if 'truncated' in str(exc):
            raise RequestError(f"'{name}' is truncated: the file ends before the image does; "
                               f'upload it again') from None
        raise RequestError(f"'{name}' is not an image PIL can read (PNG, JPEG, BMP, WebP, "
                           f'TIFF...)') from None
    except Exception:  # PIL raises several types for files that are not images
        raise RequestError(f"'{name}' is not an image PIL can read (PNG, JPEG, BMP, WebP, "
                           f'TIFF...)') from None
    return np.ascontiguousarray(rgb[..., ::-1])


def _data_url(image: Image.Image, kind: str = 'PNG') -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    mime = 'image/png' if kind == 'PNG' else 'image/jpeg'
    return f'data:{mime};base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def _mask_overlay(masks: list[dict], keep: list[int], size: tuple[int, int]) -> str | None:
    """The masks ``keep`` (COCO RLE) in their colours, semi-transparent, as a PNG data URL."""
    if not keep:
        return None
    from pycocotools import mask as mask_utils

    height, width = size
    overlay = np.zeros((height, width, 4), dtype=np.uint8)
    for rank in reversed(keep):  # the best on top
        rle = {'size': masks[rank]['size'], 'counts': masks[rank]['counts'].encode('ascii')}
        where = mask_utils.decode(rle).astype(bool)
        overlay[where] = (*PALETTE[rank % len(PALETTE)], 115)
    return _data_url(Image.fromarray(overlay, 'RGBA'))


def describe(result: dict[str, Any], size: tuple[int, int], score_threshold: float,
             topk: int = 5) -> dict[str, Any]:
    """A task's plain result -> what the page draws (module doc): only the fields' names
    decide."""
    out: dict[str, Any] = {}
    scores = result.get('scores')
    if 'boxes' in result:
        names = result.get('classes') or [str(label) for label in result.get('labels', [])]
        keep = [i for i, score in enumerate(scores or []) if score >= score_threshold]
        out['regions'] = [{'box': result['boxes'][i], 'score': round(float(scores[i]), 4),
                           'name': names[i] if i < len(names) else '',
                           'color': '#{:02x}{:02x}{:02x}'.format(*PALETTE[i % len(PALETTE)])}
                          for i in keep]
        out['best_score'] = round(float(max(scores or [0.0])), 4)
        if result.get('masks'):
            out['mask_overlay'] = _mask_overlay(result['masks'], keep, size)
    elif 'classes' in result and scores is not None:
        out['ranking'] = [{'name': n, 'score': round(float(s), 4)}
                          for n, s in zip(result['classes'][:topk], scores[:topk])]
    elif 'texts' in result and scores is not None:
        out['ranking'] = [{'name': t, 'score': round(float(s), 4)}
                          for t, s in zip(result['texts'], scores)]
    if 'caption' in result:
        out['caption'] = str(result['caption'])
    if not out:
        out['json'] = json.dumps(result)[:4000]
    return out


class DemoService:
    """The model behind the page: loaded once, every task on each image.

    Args:
        config, checkpoint, data, partial: as for :func:`~up2core.apis.init_model`.
        cfg_options: config overrides.
        examples: how many generated Shapes images the page offers as examples.
    """

    def __init__(self, config: str, checkpoint: str | None, cfg_options: list[str] | None = None,
                 examples: int = 4, data: str | None = None, partial: bool = False,
                 max_waiting: int = MAX_WAITING) -> None:
        from up2core.apis.inference import init_model

        self.model = init_model(config, checkpoint, cfg_options=cfg_options, data=data,
                                partial=partial)
        self.loads = 1
        self.config, self.checkpoint = str(config), checkpoint
        self._lock = threading.Lock()
        # One thread runs the model, whichever request thread asks: its large allocations then
        # come from one malloc arena instead of one per request thread.  Under 1, 4, 16, 16, 1
        # clients (benchmarks/demo_load.py) the server's memory went 987 -> 1050 MiB, peak
        # 1258; run in the request threads, 1018 -> 1244, peak 1698.
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix='up2-model')
        self.max_waiting = max_waiting
        self._waiting = 0
        self._counter = threading.Lock()
        self._seconds = 1.0  # a running mean of the model's time per request
        self._examples_dir = tempfile.TemporaryDirectory(prefix='up2-demo-')
        self.examples = self._make_examples(Path(self._examples_dir.name), examples)

    @staticmethod
    def _make_examples(root: Path, count: int) -> dict[str, dict]:
        """A few Shapes val images (generated, seed 0) with their captions."""
        if count <= 0:
            return {}
        from up2core.data.shapes import ShapesSpec, generate_shapes

        generate_shapes(root / 'shapes', ShapesSpec(num_train=1, num_val=count, seed=0))
        captions: dict[str, list[str]] = {}
        found = sorted((root / 'shapes' / 'annotations').glob('captions_val*.json'))
        if found:
            coco = json.loads(found[0].read_text())
            files_by_id = {image['id']: Path(image['file_name']).name for image in coco['images']}
            for ann in coco['annotations']:
                captions.setdefault(files_by_id.get(ann['image_id'], ''), []).append(
                    ann['caption'])
        return {path.name: {'path': path, 'captions': captions.get(path.name, [])}
                for path in sorted((root / 'shapes' / 'images' / 'val').glob('*.png'))}

    def info(self) -> dict[str, Any]:
        tasks = {}
        for name, task in self.model.tasks.items():
            tasks[name] = {'type': type(task).__name__,
                           'needs': list(getattr(task, 'infer_requires', ())),
                           'classes': list(getattr(task, 'test_class_names', None)
                                           or getattr(task, 'class_names', None) or [])}
        from up2core.engine.data_card import card_lines

        card = getattr(self.model, 'card', None)
        return {'config': self.config, 'checkpoint': self.checkpoint, 'tasks': tasks,
                # what the model was trained on: shown on the page above its answers
                'card': card, 'card_lines': card_lines(card),
                'examples': [{'name': n, 'captions': e['captions']}
                             for n, e in self.examples.items()],
                'max_bytes': MAX_BYTES, 'max_names': MAX_NAMES}

    def example_bytes(self, name: str) -> bytes:
        if name not in self.examples:
            raise RequestError(f"no example '{name}'; the examples are "
                               f"{', '.join(self.examples)}", status=404)
        return self.examples[name]['path'].read_bytes()

    def predict(self, image: np.ndarray, name: str = 'upload', classes: list[str] | None = None,
                texts: list[str] | None = None, score_threshold: float = 0.3
                ) -> dict[str, Any]:
        """Every task the inputs allow on ``image`` (BGR): what the page draws, and the
        seconds each part took (milliseconds in ``timings_ms``).

        Requests wait for the model in turn; with :attr:`max_waiting` already waiting, a
        :class:`RequestError` with status 503 says the demo is busy and when to try again."""
        from up2core.apis.inference import iter_inference, runnable_tasks

        if not 0.0 <= score_threshold <= 1.0:
            raise RequestError(f'score threshold {score_threshold}: give a number from 0 to 1')
        _check_names(classes, 'classes')
        _check_names(texts, 'texts')
        given: dict[str, Any] = {'texts': texts or None}
        if classes:
            given['classes'] = classes
        tasks = runnable_tasks(self.model, list(self.model.tasks), given)
        timings: dict[str, float] = {}
        wall = time.perf_counter()
        with self._counter:
            if self._waiting >= self.max_waiting:
                wait = max(1, round(self._seconds * (self._waiting + 1)))
                raise RequestError(f'the demo is busy: {self._waiting} requests are waiting '
                                   f'for the model; try again in about {wait} s', status=503,
                                   retry_after=wait)
            self._waiting += 1

        def run() -> tuple[list, float]:
            with self._lock:  # (waiting ends when the model is ours)
                with self._counter:
                    self._waiting -= 1
                start = time.perf_counter()
                try:
                    return list(iter_inference(self.model, [image], tasks, 1, timings=timings,
                                               **given)), start - wall
                finally:
                    self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - start)

        try:
            ((_, _, samples),), waited = self._model_thread.submit(run).result()
        except (DataError, UserError) as exc:
            raise RequestError(str(exc)) from None
        if isinstance(samples, str):
            raise RequestError(samples)
        height, width = image.shape[:2]
        results = {}
        for task, sample in samples.items():
            result = self.model.tasks[task].to_result(sample)
            results[task] = describe(result, (height, width), score_threshold)
            results[task]['ms'] = round(timings.get(task, 0.0) * 1000, 1)
        skipped = {t: f"needs {', '.join(self.model.tasks[t].infer_requires)}"
                   for t in self.model.tasks if t not in tasks}
        rgb = Image.fromarray(np.ascontiguousarray(image[..., ::-1]))
        return {'image': {'name': name, 'width': width, 'height': height,
                          'src': _data_url(rgb, 'PNG' if width * height <= 512 * 512 else 'JPEG')},
                'results': results, 'skipped': skipped,
                'timings_ms': {'encoding': round(timings.get('encoding', 0.0) * 1000, 1),
                               'queued': round(waited * 1000, 1),
                               'total': round((time.perf_counter() - wall) * 1000, 1)},
                'score_threshold': score_threshold}


__all__ = ['MAX_BYTES', 'MAX_NAMES', 'MAX_NAME_CHARS', 'MAX_PIXELS', 'MAX_WAITING', 'DemoService',
           'RequestError', 'decode_image', 'describe', 'field_list']
