"""A training step per task and all-task inference of a paper-scale config on a GPU, in bf16 and
fp32, with peak memory: the first numbers to take on a GPU machine (under 8 minutes).

    python benchmarks/gpu_step.py [--config up2_base_swinb_in1k_coco] [--dtypes bf16 fp32]
        [--image-size 384] [--batch 2] [--steps 3] [--budget-s 420]
        [--out benchmarks/results/gpu_step.json]

The config is built with random weights as ``model_size.py`` builds it (no weights or data are
read; BERT-base stands in for RoBERTa-base).  For each precision, each task trains ``--steps``
timed steps (after one warm-up step) on a synthetic batch through MMEngine's
``model.train_step`` and the config's own optimiser wrapper (MT-AdamW, clipping, its
``paramwise_cfg``); bf16 is autocast (weights and optimiser state stay fp32, as mixed-precision
training keeps them).  Then every task answers on one image under one shared encoding (as
``up2 infer`` does without ``--task``).  Each row gives the median seconds and the peak memory
allocated (``torch.cuda.max_memory_allocated``, reset per row).  New rows stop starting once
``--budget-s`` has passed, so the run keeps to its time.

Without a CUDA device it says so in one line and exits 0: it is never part of the test suite.
``--device cpu`` runs the same code on the CPU (a dry run of the script, e.g. with
``--config up2_tiny_shapes_generalist --image-size 64 --steps 1``; CPU rows have no memory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))

TRAINED = ('classification', 'detection', 'segmentation', 'retrieval', 'captioning')
TEXTS = ('a man riding a wave on a surfboard .', 'two dogs play in the grass .')


def synthetic_samples(task: str, size: int, count: int = 2) -> list:
    """``count`` samples of ``task`` as its pipeline would pack them, with ground truth.

    Detection and segmentation get four boxes (and box-shaped masks) per image: with random
    weights a matched query may rank outside the region tokens, and an image whose every match
    does has no region-classification loss.
    """
    from mmengine.structures import BaseDataElement, InstanceData

    if task == 'classification':
        return [BaseDataElement(metainfo=dict(task=task), gt_label=(3 + 4 * i) % 10)
                for i in range(count)]
    if task in ('retrieval', 'captioning'):
        return [BaseDataElement(metainfo=dict(task=task), texts=[TEXTS[i % len(TEXTS)]])
                for i in range(count)]
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks

    unit = torch.tensor([[.08, .10, .55, .78], [.31, .23, .94, .70], [.04, .47, .39, .94],
                         [.50, .50, .78, .86]])
    samples = []
    for i in range(count):
        boxes = (unit * size + 4 * i).clamp(max=size - 1)
        gt = InstanceData(bboxes=HorizontalBoxes(boxes), labels=torch.tensor([17, 2, 40, 0]))
        if task == 'segmentation':
            masks = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
            for j, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                masks[j, y0:y1, x0:x1] = 1
            gt.masks = BitmapMasks(masks.numpy(), size, size)
        samples.append(DetDataSample(gt_instances=gt, metainfo=dict(
            task=task, img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.),
            flip=False)))
    return samples


def _images(size: int, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
            for _ in range(count)]


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) \
        if device.startswith('cuda') else None


def _reset_peak(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()


def _autocast(device: str, dtype: str):
    if dtype == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(':')[0], dtype=torch.bfloat16)


def build(config: str, device: str):
    """The config's model (random weights) and optimiser wrapper, on ``device``."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from model_size import offline_config

    from up2core.registry import MODELS

    init_default_scope('up2core')
    cfg = offline_config(config)
    classification = cfg.model.tasks.get('classification')
    if classification is not None and len(classification.get('class_names') or []) > 100:
        classification.class_names = [f'class {i}' for i in range(100)]
    model = MODELS.build(cfg.model).to(device)
    tasks = [t for t in TRAINED if t in cfg.train_dataloader]
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper, tasks


def train_step_row(model, optim_wrapper, task: str, tasks: list[str], device: str, dtype: str,
                   size: int, batch: int, steps: int) -> dict:
    """Median seconds of ``steps`` training steps of ``task`` (after a warm-up step)."""
    model.train()
    data = {'inputs': _images(size, batch), 'data_samples': synthetic_samples(task, size, batch)}
    if hasattr(optim_wrapper, 'set_task'):
        optim_wrapper.set_task(task, 1.0 / len(tasks), 1.0, num_tasks=len(tasks))
    _reset_peak(device)
    times = []
    for step in range(steps + 1):
        _sync(device)
        start = time.perf_counter()
        with _autocast(device, dtype):
            log = model.train_step(data, optim_wrapper)
        _sync(device)
        if step:
            times.append(time.perf_counter() - start)
    loss = float(torch.as_tensor(log['loss']).detach())
    return {'kind': 'train_step', 'task': task, 'dtype': dtype, 'batch': batch,
            'image_size': size, 'seconds': round(statistics.median(times), 4),
            'peak_gib': _peak_gib(device), 'loss': loss, 'finite': bool(loss == loss)}


@torch.no_grad()
def inference_row(model, tasks: list[str], device: str, dtype: str, size: int,
                  steps: int) -> dict:
    """Median seconds of every task answering on one image under one shared encoding."""
    model.eval()
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                flip=False)
    from mmengine.structures import BaseDataElement

    inputs = model.data_preprocessor({'inputs': _images(size, 1), 'data_samples': [
        BaseDataElement(metainfo=dict(task=tasks[0], **meta))]}, False)['inputs']
    _reset_peak(device)
    times = []
    for step in range(steps + 1):
        _sync(device)
        start = time.perf_counter()
        with _autocast(device, dtype), model.shared_encoding():
            for task in tasks:
                sample = BaseDataElement(metainfo=dict(task=task, **meta))
                model.tasks[task].infer(model, inputs, [sample], texts=list(TEXTS))
        _sync(device)
        if step:
            times.append(time.perf_counter() - start)
    return {'kind': 'all_task_inference', 'tasks': tasks, 'dtype': dtype, 'image_size': size,
            'seconds': round(statistics.median(times), 4), 'peak_gib': _peak_gib(device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='up2_base_swinb_in1k_coco')
    parser.add_argument('--device', default='cuda', help="'cuda' (default) or 'cpu' (dry run)")
    parser.add_argument('--dtypes', nargs='+', default=['bf16', 'fp32'], choices=['bf16', 'fp32'])
    parser.add_argument('--image-size', type=int, default=384)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=3, help='timed steps per row')
    parser.add_argument('--budget-s', type=float, default=420,
                        help='start no new row after this many seconds')
    parser.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'gpu_step.json'))
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print('gpu_step: no CUDA device here; nothing measured (--device cpu for a dry run)')
        return 0
    start = time.perf_counter()
    model, optim_wrapper, tasks = build(args.config, args.device)
    rows, skipped = [], []
    for dtype in args.dtypes:
        for task in [*tasks, None]:
            name = f'{dtype} {task or "all-task inference"}'
            if time.perf_counter() - start > args.budget_s:
                skipped.append(name)
                continue
            row = train_step_row(model, optim_wrapper, task, tasks, args.device, dtype,
                                 args.image_size, args.batch, args.steps) if task else \
                inference_row(model, tasks, args.device, dtype, args.image_size, args.steps)
            rows.append(row)
            print(f"{name}: {row['seconds']} s" + (
                f", peak {row['peak_gib']} GiB" if row['peak_gib'] is not None else ''),
                flush=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'
    record = {'config': args.config, 'device': device_name, 'torch': torch.__version__,
              'image_size': args.image_size, 'batch': args.batch, 'steps': args.steps,
              'rows': rows, 'skipped_for_budget': skipped,
              'wall_s': round(time.perf_counter() - start, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + '\n')
    print(f'gpu_step: {len(rows)} rows in {record["wall_s"]} s -> {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
