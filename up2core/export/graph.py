"""One task's inference graph, exported with ``torch.export`` (and to ONNX), and run again.

:class:`TaskGraph` is what is exported: an RGB image batch in, the task's tensors out.

* **In the graph:** normalisation (the config's data preprocessor: mean, std, channel order),
  the backbone and neck, the region proposals (mmcv's deformable attention through
  :class:`~up2core.export.traceable.TraceableDeformableAttention`), the shared decoder with its
  MoE routes, the likelihood against the candidate embeddings baked in at export, and for
  region tasks the top-k over (proposal, name) pairs.
* **Outside the graph:** reading and resizing the image to the exported size (the config's
  test pipeline does it: :func:`prepare_image`), mapping boxes and masks back to the original
  image, thresholds, and the text encoder: candidates are fixed at export (``classes``,
  ``texts``); to change them, export again.  Captioning's decoding loop is not exported.

The input is ``images``: float32 ``[N, 3, H, W]``, RGB, 0-255, at the exported ``H x W``; the
batch size is free (1 to ``max_batch``).  A JSON file beside the graph (``<out>.json``) records
the task, the input, the output names and what they index (class names, texts).

Examples:
    >>> model = init_model('up2_tiny_shapes_generalist', 'iter_260.pth')      # doctest: +SKIP
    >>> info = export_task(model, 'detection', 'det.onnx', format='onnx')     # doctest: +SKIP
    >>> graph = ExportedGraph('det.onnx')                                     # doctest: +SKIP
    >>> outputs = graph(prepare_image(model, 'detection', 'photo.png')[0])    # doctest: +SKIP
    >>> outputs['boxes'].shape                                                # doctest: +SKIP
    (1, 100, 4)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from up2core.errors import UserError
from up2core.export.head import ExportHead
from up2core.export.traceable import traceable

#: the formats :func:`export_task` writes, and their usual file suffixes
FORMATS = {'onnx': '.onnx', 'exported-program': '.pt2'}


class TaskGraph(nn.Module):
    """The model's path for one task, from RGB pixels to the task's tensors.

    Args:
        model: a built (and loaded) generalist.
        task: the task's name in ``model.tasks``.
        **options: for the task's :meth:`~up2core.task.Task.export_head` (``classes=[...]``,
            ``texts=[...]``).
    """

    def __init__(self, model: nn.Module, task: str, **options: Any) -> None:
        super().__init__()
        if task not in model.tasks:
            raise UserError(f"task '{task}' is not in this model; it has {list(model.tasks)}")
        self.model = model.eval()
        self.task = task
        with torch.no_grad():
            head = model.tasks[task].export_head(model, **options)
        if not isinstance(head, ExportHead):
            raise TypeError(f"task '{task}': export_head must return an ExportHead, got "
                            f'{type(head).__name__}')
        self.head = head
        pre = model.data_preprocessor
        mean = getattr(pre, 'mean', None) if getattr(pre, '_enable_normalize', False) else None
        self.register_buffer('mean', (mean if mean is not None else torch.zeros(3, 1, 1))
                             .detach().clone().view(1, 3, 1, 1))
        std = getattr(pre, 'std', None) if mean is not None else None
        self.register_buffer('std', (std if std is not None else torch.ones(3, 1, 1))
                             .detach().clone().view(1, 3, 1, 1))
        # The eager pipeline loads BGR; a preprocessor that converts to RGB hands the model RGB,
        # which is the graph's input.  One that does not hands it BGR: flip.
        self.flip_channels = not getattr(pre, '_channel_conversion', False)
        self.pad_divisor = int(getattr(pre, 'pad_size_divisor', 1) or 1)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.head.output_names)

    @property
    def input_names(self) -> tuple[str, ...]:
        return ('images',) + tuple(self.head.input_names)

    def forward(self, images: Tensor, *extra: Tensor) -> tuple[Tensor, ...]:
        if self.flip_channels:
            images = images.flip(1)
        return self.head(self.model, (images - self.mean) / self.std, *extra)


def prepare_image(model, task: str, image: str | np.ndarray, size: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, dict]:
    """An image as a graph of ``task`` takes it: ``([1, 3, H, W] float32 RGB, meta)``.

    The task's test pipeline reads and resizes it (as eager inference does), then it is padded
    at the bottom and right to ``size`` (the exported input size; default: no padding).
    ``meta`` (``img_shape``, ``ori_shape``, ``scale_factor``...) maps the outputs back to the
    original image (:func:`~up2core.regions.boxes_to_original`,
    :func:`~up2core.regions.masks_to_original`).
    """
    from up2core.apis.inference import _prepare, read_image

    name = image if isinstance(image, str) else '<array>'
    packed = _prepare(model, [task], name, read_image(image))[task]
    bgr = packed['inputs'].float()
    height, width = bgr.shape[-2:]
    if size is not None:
        if height > size[0] or width > size[1]:
            raise UserError(f"image '{name}' is {height}x{width} after the test pipeline, larger "
                            f'than the graph\'s input {size[0]}x{size[1]}: export with '
                            f'--image-size {height} {width} or larger')
        # padded with the preprocessor's mean (zero once normalised), as training pads a batch
        mean = getattr(model.data_preprocessor, 'mean', None)
        padded = bgr.new_zeros(bgr.shape[0], *size)
        if mean is not None:
            # the mean is in the order the preprocessor sees channels (RGB after its swap);
            # the image here is still BGR
            values = mean.flatten().to(bgr).flip(0) if getattr(
                model.data_preprocessor, '_channel_conversion', False) else \
                mean.flatten().to(bgr)
            padded += values[:, None, None]
        padded[:, :height, :width] = bgr
        bgr = padded
    return bgr.flip(0)[None].numpy(), dict(packed['data_samples'].metainfo)


def export_task(model: nn.Module, task: str, out: str | os.PathLike, format: str = 'onnx',
                image_size: tuple[int, int] = (128, 128), max_batch: int = 64,
                **options: Any) -> dict[str, Any]:
    """Export ``task``'s graph (:class:`TaskGraph`) to ``out`` and its description to
    ``<out>.json``; returns that description.

    Args:
        format: ``'onnx'`` (``torch.onnx.export(dynamo=True)``, needs ``onnx`` and
            ``onnxscript``) or ``'exported-program'`` (``torch.export.save``, a ``.pt2``).
        image_size: ``(H, W)`` of the input (fixed in the graph; the batch size is not).
        max_batch: the largest batch the graph accepts.
        **options: the task's export options: ``classes=[...]`` (classification, detection,
            segmentation: default the config's names), ``texts=[...]`` (retrieval: required).
    """
    if format not in FORMATS:
        raise UserError(f"--format {format}: use one of {', '.join(FORMATS)}")
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise UserError(f'--image-size {height} {width}: give a positive height and width')
    graph = TaskGraph(model, task, **options).eval()
    if height % graph.pad_divisor or width % graph.pad_divisor:
        raise UserError(f'--image-size {height} {width}: the model pads its input to a '
                        f'multiple of {graph.pad_divisor}; give sizes divisible by it')
    if max_batch < 1:
        raise UserError(f'--max-batch {max_batch}: must be at least 1')
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = 2 if max_batch > 1 else 1
    example = (torch.rand(batch, 3, height, width) * 255,) + \
        tuple(graph.head.example_inputs(batch))
    if max_batch > 1:
        dim = torch.export.Dim('batch', min=1, max=max_batch)
        # one spec per parameter of TaskGraph.forward: images, then the *extra tuple (when
        # the head has extra inputs)
        dynamic = ({0: dim},) + ((tuple({0: dim} for _ in example[1:]),)
                                 if len(example) > 1 else ())
    else:
        dynamic = None
    start = time.perf_counter()
    with traceable(graph), torch.no_grad(), warnings.catch_warnings():
        # the tracer's and exporter's notes on mmdet/mmcv internals are not the user's to fix
        warnings.simplefilter('ignore')
        program = torch.export.export(graph, example, dynamic_shapes=dynamic, strict=False)
        if format == 'exported-program':
            torch.export.save(program, str(out))
        else:
            _save_onnx(program, example, dynamic, graph.input_names, graph.output_names, out)
    extra = [{'name': name, 'dtype': str(value.dtype).replace('torch.', ''),
              'shape': ['batch', *value.shape[1:]]}
             for name, value in zip(graph.head.input_names, example[1:])]
    info = {
        'format': format,
        'task': task,
        'task_type': type(model.tasks[task]).__name__,
        'input': {'name': 'images', 'dtype': 'float32', 'shape': ['batch', 3, height, width],
                  'layout': 'NCHW', 'channels': 'RGB', 'range': [0, 255], 'max_batch': max_batch},
        'extra_inputs': extra,
        'outputs': list(graph.output_names),
        'metadata': graph.head.metadata,
        'config': str(getattr(getattr(model, 'cfg', None), 'filename', '') or ''),
        'export_seconds': round(time.perf_counter() - start, 1),
        'torch': torch.__version__,
    }
    Path(f'{out}.json').write_text(json.dumps(info, indent=2) + '\n')
    return info


def _save_onnx(program, example: tuple[Tensor, ...], dynamic, input_names, output_names,
               out: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UserError(f'--format onnx needs the onnx and onnxscript packages ({exc.name} is '
                        f"missing): pip install 'up2[export]'") from None
    # The exporter prints its progress and a line per skipped torchvision op: keep it quiet.
    quiet = logging.getLogger('torch.onnx')
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            onnx_program = torch.onnx.export(program, example, dynamo=True,
                                             input_names=list(input_names),
                                             output_names=list(output_names),
                                             dynamic_shapes=dynamic, verbose=False)
            onnx_program.save(str(out))
    finally:
        quiet.setLevel(level)


class ExportedGraph:
    """Runs an exported file: ONNX through ONNX Runtime, a ``.pt2`` through ``torch.export``.

    Calling it with ``[N, 3, H, W]`` float32 RGB pixels (and a graph's extra inputs by name,
    e.g. ``tokens=``) returns ``{output name: array}``.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"exported graph '{path}' not found")
        described = Path(f'{path}.json')
        self.info = json.loads(described.read_text()) if described.is_file() else {}
        self.format = self.info.get('format') or \
            ('onnx' if self.path.suffix == '.onnx' else 'exported-program')
        if self.format == 'onnx':
            try:
                import onnxruntime
            except ImportError:
                raise UserError("running an ONNX graph needs onnxruntime: pip install "
                                "'up2[export]'") from None
            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(self.path), options, providers=['CPUExecutionProvider'])
            self.output_names = [o.name for o in self._session.get_outputs()]
        else:
            self._module = torch.export.load(str(self.path)).module()
            self.output_names = list(self.info.get('outputs', []))

    def __call__(self, images: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = [i['name'] for i in self.info.get('extra_inputs', [])]
        if sorted(extra) != sorted(expected):
            raise TypeError(f'{self.path} takes images and {expected or "nothing else"}, got '
                            f'{sorted(extra)}')
        extra = {name: np.ascontiguousarray(extra[name]) for name in expected}
        if self.format == 'onnx':
            values = self._session.run(None, {'images': images, **extra})
        else:
            with torch.no_grad():
                values = [v.numpy() for v in self._module(
                    torch.from_numpy(images), *(torch.from_numpy(extra[n]) for n in expected))]
        names = self.output_names or [f'output{i}' for i in range(len(values))]
        return dict(zip(names, values))


__all__ = ['FORMATS', 'ExportedGraph', 'TaskGraph', 'export_task', 'prepare_image']
