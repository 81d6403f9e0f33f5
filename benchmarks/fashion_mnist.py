"""Real images, side by side: UP2's classification by class-name likelihood against a
same-backbone specialist with a linear head, on Fashion-MNIST.

    python benchmarks/fashion_mnist.py fetch [--out data/fashion_mnist]
    python benchmarks/fashion_mnist.py run [--seeds 0 1 2] [--steps 1500] [--batch 32]
        [--size 64] [--only up2|specialist] [--limit-train N] [--limit-test N]
    python benchmarks/fashion_mnist.py table

**fetch** takes Debian's ``dataset-fashion-mnist`` package (70,000 real 28 x 28 greyscale photos of
clothes, 10 classes, Zalando; ``apt-get download`` + ``dpkg -x``, nothing installed) and writes it
in the image-folder layout a user has: ``train/<k>/*.png`` (60,000), ``val/<k>/*.png`` (the
10,000 test images), ``classes.txt`` with the readable names, and ``data.yaml``.  The library
never downloads anything: this script is how the data gets here.

**run** trains, per seed, on the same images (each drawn at random: UP2 by MMEngine's shuffled
sampler, the specialist with replacement, both seeded), at the same resolution (``LimitImageSize(min_side=--size)``: 28 px brought up to ``--size``), steps,
batch, optimiser and schedule (AdamW 5e-4, backbone lr x 0.1, weight decay 0.05, clip 1.0,
warm-up 50 steps then cosine to 5 %: ``up2_tiny_shapes_classification``'s):

* ``up2``: ``up2 train up2_tiny_shapes_classification --data data.yaml`` (the packaged
  EfficientNet-Lite0 and MiniLM text encoder, the shared decoder; a class is the likelihood
  of its name, prompt "a photo of a {}."), then its top-1 on the 10,000 test images;
* ``specialist``: the same EfficientNet-Lite0 (the same packaged ImageNet weights and frozen
  stages), global average pooling and a linear layer to 10 logits, plain cross-entropy, trained
  in this process on batches that UP2's own dataset and data preprocessor make.

Records go to ``benchmarks/results/fashion_mnist.json`` (kept between invocations); ``table``
prints top-1 mean +- std and seconds per run.  Run it on an idle machine: a measurement, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results' / 'fashion_mnist.json'
CONFIG = 'up2_tiny_shapes_classification'
PACKAGE = 'dataset-fashion-mnist'
#: Zalando's label order
CLASSES = ('T-shirt/top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker',
           'bag', 'ankle boot')
PROMPT = 'a photo of a {}.'


# --------------------------------------------------------------------------- fetch


def _idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as an array: images [N, 28, 28] uint8 or labels [N]."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fetch(out: Path) -> Path:
    """Write the image-folder tree and its dataset file; return the dataset file's path."""
    from PIL import Image

    data = out / 'data.yaml'
    if data.is_file():
        print(f'[fashion_mnist] already there: {data}')
        return data
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(['apt-get', 'download', PACKAGE], cwd=tmp, check=True,
                       capture_output=True)
        (deb,) = Path(tmp).glob('*.deb')
        subprocess.run(['dpkg', '-x', str(deb), str(Path(tmp) / 'x')], check=True)
        source = Path(tmp) / 'x' / 'usr' / 'share' / 'datasets' / 'fashion-mnist'
        for split, prefix in (('train', 'train'), ('val', 't10k')):
            images = _idx(source / f'{prefix}-images-idx3-ubyte.gz')
            labels = _idx(source / f'{prefix}-labels-idx1-ubyte.gz')
            for k in range(len(CLASSES)):
                (out / split / str(k)).mkdir(parents=True, exist_ok=True)
            for index, (image, label) in enumerate(zip(images, labels)):
                Image.fromarray(image, 'L').save(out / split / str(label) / f'{index:05d}.png')
            print(f'[fashion_mnist] {split}: {len(images)} images', flush=True)
    # folders '0'..'9' sort as the labels do, so classes.txt follows Zalando's order
    (out / 'classes.txt').write_text('\n'.join(CLASSES) + '\n')
    data.write_text('path: .\nclassification: {train: train, val: val, classes: classes.txt}\n')
    return data


# --------------------------------------------------------------------------- run


def _options(steps: int, batch: int, size: int, seed: int) -> list[str]:
    """What both models share: resolution, batch, steps, schedule, seed."""
    return [f'max_iters={steps}', f'train_cfg.val_interval={steps}',
            f'param_scheduler.1.end={steps}', f'randomness.seed={seed}',
            f'train_dataloader.classification.batch_size={batch}',
            f'+train_dataloader.classification.dataset.pipeline.1.min_side={size}',
            f'train_dataloader.classification.dataset.pipeline.1.max_side={size}',
            f'+val_dataloader.classification.dataset.pipeline.1.min_side={size}',
            f'val_dataloader.classification.dataset.pipeline.1.max_side={size}',
            f'model.tasks.classification.prompt={PROMPT}']


def _limit(data: Path, limit_train: int | None, limit_test: int | None, work: Path) -> Path:
    """A copy of the tree with the first N images of each split (a quick check of the script)."""
    if not (limit_train or limit_test):
        return data
    out = work / 'subset'
    for split, limit in (('train', limit_train), ('val', limit_test)):
        files = sorted((data.parent / split).glob('*/*.png'))
        step = max(1, len(files) // limit) if limit else 1
        for path in files[::step][:limit or None]:
            target = out / split / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(path, target)
    shutil.copy(data.parent / 'classes.txt', out / 'classes.txt')
    shutil.copy(data, out / 'data.yaml')
    return out / 'data.yaml'


def run_up2(data: Path, options: list[str], work: Path) -> dict:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, '-m', 'up2core.cli', 'train', CONFIG, '--data',
                             str(data), '--work-dir', str(work), '--cfg-options', *options],
                            capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    if result.returncode != 0:
        raise SystemExit(f'[fashion_mnist] up2 train failed:\n{result.stderr[-3000:]}')
    metrics = json.loads((work / 'metrics.json').read_text())
    return {'top1': metrics['classification/top1'], 'seconds': time.perf_counter() - start}


def run_specialist(data: Path, options: list[str], steps: int, seed: int) -> dict:
    """The same backbone + linear head, plain cross-entropy, on UP2's own batches."""
    import torch
    import torch.nn.functional as F
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from torch import nn

    import up2core  # noqa: F401
    from up2core.config import load_config, parse_cfg_options
    from up2core.data.dataset_file import apply_data_file, load_data_file
    from up2core.registry import DATASETS, MODELS

    start = time.perf_counter()
    cfg = load_config(CONFIG, parse_cfg_options(options))
    apply_data_file(cfg, load_data_file(data), quiet=True)
    init_default_scope('up2core')
    torch.manual_seed(seed)
    loader_cfg = cfg.train_dataloader.classification
    train = DATASETS.build(loader_cfg.dataset)
    sampler = torch.utils.data.RandomSampler(
        train, replacement=True, num_samples=steps * loader_cfg.batch_size,
        generator=torch.Generator().manual_seed(seed))
    batches = torch.utils.data.DataLoader(train, batch_size=loader_cfg.batch_size,
                                          sampler=sampler, num_workers=2,
                                          collate_fn=pseudo_collate)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    backbone = MODELS.build({**cfg.model.image_encoder.backbone, 'out_strides': (32,)})
    head = nn.Linear(backbone.out_channels[-1], len(CLASSES))
    optimiser_cfg = cfg.optim_wrapper.optimizer
    lr = optimiser_cfg.lr
    backbone_mult = cfg.optim_wrapper.paramwise_cfg.custom_keys['image_encoder.backbone'].lr_mult
    optimiser = torch.optim.AdamW(
        [{'params': [p for p in backbone.parameters() if p.requires_grad],
          'lr': lr * backbone_mult},
         {'params': head.parameters(), 'lr': lr}],
        betas=tuple(optimiser_cfg.betas), weight_decay=optimiser_cfg.weight_decay)
    warmup = cfg.param_scheduler[0]['end']

    def factor(step: int) -> float:  # LinearLR(0.01 -> 1) then cosine to 5 %, as UP2's
        if step < warmup:
            return 0.01 + 0.99 * step / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    backbone.train()
    for batch in batches:
        packed = preprocessor(batch, True)
        labels = torch.tensor([int(s.gt_label) for s in packed['data_samples']])
        logits = head(backbone(packed['inputs'])[-1].mean(dim=(2, 3)))
        loss = F.cross_entropy(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(list(backbone.parameters()) + list(head.parameters()), 1.0)
        optimiser.step()
        schedule.step()
    backbone.eval()
    test = DATASETS.build(cfg.val_dataloader.classification.dataset)
    correct = total = 0
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(test, batch_size=100, num_workers=2,
                                                 collate_fn=pseudo_collate):
            packed = preprocessor(batch, False)
            labels = torch.tensor([int(s.gt_label) for s in packed['data_samples']])
            predicted = head(backbone(packed['inputs'])[-1].mean(dim=(2, 3))).argmax(-1)
            correct += int((predicted == labels).sum())
            total += len(labels)
    return {'top1': 100.0 * correct / total, 'seconds': time.perf_counter() - start}


def _records() -> list[dict]:
    return json.loads(RESULTS.read_text())['runs'] if RESULTS.is_file() else []


def run(args) -> None:
    data = Path(args.data).resolve()
    if not data.is_file():
        raise SystemExit(f'[fashion_mnist] {data} not found: run `python {Path(__file__).name} '
                         f'fetch` first')
    work = Path(args.work).resolve()
    data = _limit(data, args.limit_train, args.limit_test, work)
    records = _records()
    setting = {'steps': args.steps, 'batch': args.batch, 'size': args.size,
               'limit_train': args.limit_train, 'limit_test': args.limit_test}
    for seed in args.seeds:
        for model in ('up2', 'specialist'):
            if args.only and model != args.only:
                continue
            if any(r['model'] == model and r['seed'] == seed and r['setting'] == setting
                   for r in records):
                continue
            options = _options(args.steps, args.batch, args.size, seed)
            result = run_up2(data, options, work / f'up2_seed{seed}') if model == 'up2' \
                else run_specialist(data, options, args.steps, seed)
            records.append({'model': model, 'seed': seed, 'setting': setting,
                            'top1': round(result['top1'], 2),
                            'seconds': round(result['seconds'], 1)})
            RESULTS.write_text(json.dumps({
                'machine': f'{platform.machine()}, {os.cpu_count()} cpus', 'idle': args.idle,
                'runs': records}, indent=1) + '\n')
            print(f'[fashion_mnist] {model} seed {seed}: top-1 {result["top1"]:.2f} in '
                  f'{result["seconds"]:.0f} s', flush=True)


def table() -> str:
    lines = ['| model | setting | seeds | top-1 (mean ± std) | s per run |', '|---|---|---|---|---|']
    groups: dict = {}
    for r in _records():
        key = (r['model'], json.dumps(r['setting'], sort_keys=True))
        groups.setdefault(key, []).append(r)
    for (model, setting), runs in sorted(groups.items()):
        tops = [r['top1'] for r in runs]
        std = statistics.stdev(tops) if len(tops) > 1 else 0.0
        lines.append(f'| {model} | {setting} | {len(runs)} | {statistics.mean(tops):.2f} ± '
                     f'{std:.2f} | {statistics.mean(r["seconds"] for r in runs):.0f} |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=['fetch', 'run', 'table'])
    parser.add_argument('--out', default=str(ROOT / 'data' / 'fashion_mnist'))
    parser.add_argument('--data', default=str(ROOT / 'data' / 'fashion_mnist' / 'data.yaml'))
    parser.add_argument('--work', default=str(ROOT / 'benchmarks' / 'work' / 'fashion_mnist'))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--only', choices=['up2', 'specialist'])
    parser.add_argument('--limit-train', type=int, help='first N train images (a quick check)')
    parser.add_argument('--limit-test', type=int, help='first N test images (a quick check)')
    parser.add_argument('--idle', default='yes')
    args = parser.parse_args(argv)
    if args.command == 'fetch':
        fetch(Path(args.out))
    elif args.command == 'run':
        run(args)
    print(table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
