"""New names: zero-shot -> finetune -> what was forgotten, with and without the remedies.

    python benchmarks/new_names.py CHECKPOINT [--config up2_tiny_shapes_generalist]
        [--seeds 0 1 2] [--steps 100] [--replay 0.25] [--work benchmarks/work/new_names]
    python benchmarks/new_names.py --table

**The new data** (:func:`write_new_shapes`): a detection + segmentation dataset in a user's
COCO layout that shares nothing with Shapes but the grey background: four shapes Shapes never
draws (arrow, octagon, trapezoid, chevron), in four colours it never uses (cyan, pink, brown,
black), named by their shape, category ids 11, 23, 37 and 58, half the masks as polygons.
Written once (seed 0; 240 train and 60 val images of 128 px); the seeds below are those of
training.  Commands run in the repository root, so the main job's config finds the Shapes
images where ``make demo`` left them (``data/shapes``; generated there if absent).

**The runs**, all through the CLI a user has (``up2 test`` / ``up2 train --data``), from the main
job's ``CHECKPOINT``:

* ``zero_shot``: the checkpoint scored on the new val set, no training;
* ``finetune``: ``--load-from CHECKPOINT``, ``--steps`` steps on the new data;
* ``scratch``: the same steps from the config's initial weights (does the generalist's start help?);
* ``replay``: ``finetune`` with ``--replay W``: every task of the config keeps training on Shapes;
* ``frozen``: ``finetune`` with ``--freeze image_encoder.backbone text_encoder``.

After each finetune the checkpoint is also scored on Shapes val with the main job's config (the
five tasks' metrics: forgetting across classes and tasks), next to the checkpoint's own scores
before; the tasks the finetune dropped get back their own few tensors (temperature, caption
vocabulary: untouched by the finetune) from the main job's checkpoint, every shared weight
stays the finetuned one (:func:`_with_base_tensors`).  Every run trains at the config's batch and learning rate with ``max_iters`` set to
``--steps`` (as the own-data guide does).  JSON goes to ``benchmarks/results/new_names.json``
(one record per run, kept between invocations, so seeds can be added); ``--table`` prints the
mean +- std over seeds.  Run it on an idle machine; a measurement, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results' / 'new_names.json'
UP2 = [sys.executable, '-m', 'up2core.cli']

#: shape -> category id: none of them is a Shapes shape, none of the ids is 1..8
NEW_SHAPES = {'arrow': 11, 'octagon': 23, 'trapezoid': 37, 'chevron': 58}
NEW_COLOURS = {'cyan': (20, 200, 210), 'pink': (240, 120, 190), 'brown': (120, 70, 20),
               'black': (15, 15, 15)}
#: the main job's metrics on Shapes val (what forgetting is measured on)
BASE_METRICS = ('classification/top1', 'retrieval/i2t_R@1', 'retrieval/t2i_R@1',
                'detection/bbox_mAP', 'segmentation/segm_mAP', 'captioning/CIDEr')
NEW_METRICS = ('detection/bbox_mAP', 'segmentation/segm_mAP')
VARIANTS = ('finetune', 'scratch', 'replay', 'frozen')


def _polygon(shape: str) -> np.ndarray:
    """Vertices inside the unit circle (x right, y down)."""
    if shape == 'arrow':
        return np.array([[-0.9, -0.25], [0.2, -0.25], [0.2, -0.6], [0.9, 0.0], [0.2, 0.6],
                         [0.2, 0.25], [-0.9, 0.25]])
    if shape == 'octagon':
        angles = math.pi / 8 + 2 * math.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == 'trapezoid':
        return np.array([[-0.45, -0.55], [0.45, -0.55], [0.9, 0.55], [-0.9, 0.55]])
    if shape == 'chevron':
        return np.array([[-0.8, -0.7], [0.0, 0.1], [0.8, -0.7], [0.8, 0.0], [0.0, 0.8],
                         [-0.8, 0.0]])
    raise ValueError(shape)


def _split(out: Path, split: str, count: int, rng: np.random.Generator, size: int) -> None:
    import cv2
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    folder = out / 'images' / split
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        pixels = np.clip(int(rng.integers(100, 160)) + rng.integers(-10, 11, (size, size, 3)),
                         90, 170).astype(np.uint8)
        image = Image.fromarray(pixels, 'RGB')
        taken: list[tuple[float, float, float]] = []
        for _ in range(int(rng.integers(1, 4))):
            for _try in range(20):  # a place that overlaps no earlier object
                radius = float(rng.uniform(0.10, 0.22)) * size
                cx, cy = rng.uniform(radius, size - radius, 2)
                if all(math.hypot(cx - x, cy - y) > radius + r for x, y, r in taken):
                    break
            else:
                continue
            taken.append((cx, cy, radius))
            shape = list(NEW_SHAPES)[int(rng.integers(len(NEW_SHAPES)))]
            colour = list(NEW_COLOURS)[int(rng.integers(len(NEW_COLOURS)))]
            points = _polygon(shape) * radius + np.array([cx, cy])
            mask_image = Image.new('L', (size, size), 0)
            ImageDraw.Draw(mask_image).polygon([tuple(p) for p in points.tolist()], fill=255)
            image.paste(NEW_COLOURS[colour], (0, 0), mask_image)
            mask = np.asarray(mask_image) > 0
            ys, xs = np.nonzero(mask)
            box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                   float(ys.max() - ys.min() + 1)]
            if len(annotations) % 2:  # half as polygons, half as RLE, as users' files mix
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                               cv2.CHAIN_APPROX_SIMPLE)
                segmentation = [c.reshape(-1).astype(float).tolist() for c in contours
                                if len(c) >= 3]
            else:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                segmentation = {'size': rle['size'], 'counts': rle['counts'].decode()}
            annotations.append({'id': len(annotations) + 1, 'image_id': index + 1,
                                'category_id': NEW_SHAPES[shape], 'bbox': box,
                                'area': float(mask.sum()), 'iscrowd': 0,
                                'segmentation': segmentation})
        name = f'{index:05d}.png'
        image.save(folder / name)
        images.append({'id': index + 1, 'file_name': name, 'width': size, 'height': size})
    categories = [{'id': i, 'name': n, 'supercategory': 'shape'} for n, i in NEW_SHAPES.items()]
    (out / 'annotations').mkdir(exist_ok=True)
    (out / 'annotations' / f'{split}.json').write_text(json.dumps(
        {'images': images, 'annotations': annotations, 'categories': categories}))


def write_new_shapes(out: Path, num_train: int = 240, num_val: int = 60, size: int = 128,
                     seed: int = 0) -> Path:
    """Write the new dataset and its dataset file; return the dataset file's path."""
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        _split(out, split, count, rng, size)
    data = out / 'data.yaml'
    entry = ('{train: {ann: annotations/train.json, images: images/train}, '
             'val: {ann: annotations/val.json, images: images/val}}')
    data.write_text(f'path: .\ndetection: {entry}\nsegmentation: {entry}\n')
    return data


def _up2(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(UP2 + list(args), cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    if result.returncode != 0:
        raise SystemExit(f"[new_names] failed: up2 {' '.join(args)}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def _metrics(work: Path) -> dict:
    return json.loads((work / 'metrics.json').read_text())


def _test(config: str, checkpoint: Path, work: Path, cwd: Path, data: Path | None = None
          ) -> dict:
    if not (work / 'metrics.json').is_file():
        extra = ['--data', str(data)] if data else []
        _up2('test', config, str(checkpoint), '--work-dir', str(work),
             '--out-metrics', str(work / 'metrics.json'), *extra, cwd=cwd)
    return _metrics(work)


def _with_base_tensors(finetuned: Path, base: Path) -> Path:
    """``finetuned`` plus the tensors of ``base`` it lacks: the own tensors of the tasks the
    finetune dropped (their learned temperatures, the caption vocabulary), which it never
    trained.  Every shared weight is the finetuned one, so the main job's config scores what
    finetuning left of each task."""
    import torch

    out = finetuned.with_name(finetuned.stem + '_all_tasks.pth')
    if not out.is_file():
        state = torch.load(finetuned, map_location='cpu', weights_only=False)
        own = torch.load(base, map_location='cpu', weights_only=False)['state_dict']
        for name, value in own.items():
            state['state_dict'].setdefault(name, value)
        torch.save(state, out)
    return out


def _records() -> list[dict]:
    return json.loads(RESULTS.read_text())['runs'] if RESULTS.is_file() else []


def _save(records: list[dict], meta: dict) -> None:
    RESULTS.write_text(json.dumps({**meta, 'runs': records}, indent=1) + '\n')


def run(args) -> None:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / 'new_shapes' / 'data.yaml'
    if not data.is_file():
        write_new_shapes(data.parent)
    checkpoint = Path(args.checkpoint).resolve()
    records = [r for r in _records() if r.get('checkpoint') == str(checkpoint)]
    meta = {'machine': f'{platform.machine()}, {os.cpu_count()} cpus', 'idle': args.idle,
            'config': args.config, 'steps': args.steps, 'replay': args.replay,
            'cfg_options': args.cfg_options,
            'new_shapes': NEW_SHAPES, 'new_colours': list(NEW_COLOURS)}

    def record(**entry) -> None:
        records.append({'checkpoint': str(checkpoint), **entry})
        _save(records, meta)
        print(f'[new_names] {json.dumps(entry)}', flush=True)

    done = {(r['run'], r.get('seed')) for r in records}
    if ('before', None) not in done:
        base = _test(args.config, checkpoint, work / 'base_before', ROOT)
        zero = _test(args.config, checkpoint, work / 'zero_shot', ROOT, data)
        record(run='before', seed=None, base={k: base.get(k) for k in BASE_METRICS})
        record(run='zero_shot', seed=None, new={k: zero.get(k) for k in NEW_METRICS})
    options = {'finetune': [], 'scratch': [], 'replay': ['--replay', str(args.replay)],
               'frozen': ['--freeze', 'image_encoder.backbone', 'text_encoder']}
    for seed in args.seeds:
        for variant in VARIANTS:
            if (variant, seed) in done:
                continue
            out = work / f'{variant}_seed{seed}'
            final = out / f'iter_{args.steps}.pth'
            start = [] if variant == 'scratch' else ['--load-from', str(checkpoint)]
            seconds = None
            if not (final.is_file() and (out / 'metrics.json').is_file()):
                seconds = _up2('train', args.config, '--data', str(data), *start,
                               *options[variant], '--work-dir', str(out), '--cfg-options',
                               f'max_iters={args.steps}', f'randomness.seed={seed}',
                               *args.cfg_options, cwd=ROOT)
            new = _metrics(out)
            base = _test(args.config, _with_base_tensors(final, checkpoint), out / 'base_after',
                         ROOT) if variant != 'scratch' else {}
            record(run=variant, seed=seed, train_s=seconds and round(seconds, 1),
                   new={k: new.get(k) for k in NEW_METRICS},
                   base={k: base.get(k) for k in BASE_METRICS} if base else None)


def _mean_std(values: list[float], key: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    scale = 100 if 'mAP' in key else 1  # AP as a fraction -> points
    mean = statistics.mean(values) * scale
    if len(values) == 1:
        return f'{mean:.1f}'
    return f'{mean:.1f} ± {statistics.stdev(values) * scale:.1f}'


def table() -> str:
    records = _records()
    before = next(r for r in records if r['run'] == 'before')['base']
    zero = next(r for r in records if r['run'] == 'zero_shot')['new']
    head = ['run', 'seeds', 'new: box AP', 'new: mask AP', 'Shapes: top-1', 'i2t R@1',
            't2i R@1', 'box AP', 'mask AP', 'CIDEr']
    rows = [['before (main job)', '-', '-', '-'] +
            [_mean_std([before[k]], k) for k in BASE_METRICS],
            ['zero-shot', '-'] + [_mean_std([zero[k]], k) for k in NEW_METRICS] +
            ['='] * len(BASE_METRICS)]
    for variant in VARIANTS:
        runs = [r for r in records if r['run'] == variant]
        if not runs:
            continue
        row = [variant, str(len(runs))] + [_mean_std([r['new'][k] for r in runs], k)
                                           for k in NEW_METRICS]
        row += [_mean_std([r['base'][k] for r in runs], k) if runs[0]['base'] else '-'
                for k in BASE_METRICS]
        rows.append(row)
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', nargs='?', help="the main job's checkpoint")
    parser.add_argument('--config', default='up2_tiny_shapes_generalist')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--replay', type=float, default=0.25)
    parser.add_argument('--work', default=str(ROOT / 'benchmarks' / 'work' / 'new_names'))
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='more options of every training run (batch sizes...)')
    parser.add_argument('--idle', default='yes', help='was the machine idle (kept in the JSON)')
    parser.add_argument('--table', action='store_true', help='print the saved table only')
    args = parser.parse_args(argv)
    if not args.table:
        if not args.checkpoint:
            parser.error('give the main job\'s checkpoint (or --table)')
        run(args)
    print(table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
