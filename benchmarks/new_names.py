"""New names: zero-shot -> finetune -> what was forgotten, per method of keeping it.

    python benchmarks/new_names.py CHECKPOINT [--config up2_tiny_shapes_generalist]
        [--seeds 0 1 2] [--methods finetune replay ...] [--work benchmarks/work/new_names]
    python benchmarks/new_names.py --table

**The new data** (:func:`write_new_shapes`): a detection + segmentation dataset in a user's
COCO layout that shares nothing with Shapes but the grey background: four shapes Shapes never
draws (arrow, octagon, trapezoid, chevron), in four colours it never uses (cyan, pink, brown,
black), named by their shape, category ids 11, 23, 37 and 58, half the masks as polygons.
Written once (seed 0; 240 train, 60 val and 60 held-out images of 128 px); the seeds below are
those of training.  Commands run in the repository root, so the main job's config finds the
Shapes images where ``make demo`` left them (``data/shapes``; generated there if absent).

**Held-out data of both** (what an interpolation is chosen on, never what is reported): the
new data's ``holdout`` split, and 100 Shapes images of another seed (``shapes_holdout``,
``ShapesSpec(seed=1)``), scored with the main job's config moved there
(``shapes_data_root=``).

**The runs**, all through the CLI a user has (``up2 test`` / ``up2 train --data`` /
``up2 merge``), from the main job's ``CHECKPOINT``, each ``--steps`` steps of the new data at
the config's learning rate (``max_iters``, as the own-data guide sets it):

* ``zero_shot``: the checkpoint scored on the new val set, no training;
* ``default``: ``--load-from CHECKPOINT`` and no option: what ``up2 train --data`` does for a
  finetune (``--steps`` steps in all);
* ``finetune``: ``--load-from CHECKPOINT --plain-finetune``, the plain finetune;
* ``replay``: ``--replay W``: on ``W / (1 + W)`` of the steps the main job's five tasks train
  on Shapes instead (one shared step, as the main job's), with ``(1 + W) x --steps`` steps so
  the new data gets its ``--steps``;
* ``<run>+wise``: the finetuned checkpoint interpolated with the base (``up2 merge``), at the
  largest ``alpha`` of :data:`ALPHAS` whose every old metric on the held-out Shapes keeps
  >= :data:`KEEP_TO_CHOOSE` of the base's there (else the one whose worst share is highest);
* ``frozen``: ``--freeze image_encoder.backbone text_encoder``; ``scratch``: the config's
  initial weights (does the generalist's start help?) -- not in the default list;
* ``anchor``: ``--anchor A``: after every step the weights move back towards the base's by
  ``A`` of the distance (decoupled L2-SP, :mod:`up2core.engine.anchoring`);
  ``replay-anchor``: both;
* ``keep-names``: ``--plain-finetune --keep-names``: the new names trained beside Shapes'
  (as candidates the new objects are not); ``default-keep-names``: the default with it;
* ``tune-attn``: ``--plain-finetune --tune`` the shared decoder's attention projections only
  (selective tuning: every other tensor stays the base's); ``default-tune-attn``: the default
  with it;
* ``distill``: ``--plain-finetune --distill D``: every step's decoder outputs pulled towards
  the frozen base's on the same batch (:mod:`up2core.models.distillation`); ``default-distill``:
  the default at ``--distill D`` instead of its own weight; ``default-no-distill``: the default
  without distillation (``--distill 0``: the default before distillation was chosen);
* ``<variant>_lr<scale>``: the variant at the config's learning rate times ``scale``;
  ``<distill variant>_w<weight>``: at that ``--distill`` weight instead of ``--distill D``.

After each run the checkpoint is scored on Shapes val with the main job's config (the five
tasks' metrics, novel names included: forgetting across classes and tasks), next to the base's
scores; the tasks a finetune dropped get back their own few tensors (temperature, caption
vocabulary: never trained by it) from the base (:func:`_with_base_tensors`), every shared
weight stays the finetuned one.  Time is the training command's wall time and memory its peak
resident set (``wait4``).  JSON goes to ``benchmarks/results/new_names.json`` (one record per
run, kept between invocations, so seeds and methods can be added; a new ``CHECKPOINT`` starts
a new table); ``--table`` prints mean +- std over seeds, every old metric as the share of the
base's kept.  Run it on an idle machine; a measurement, never asserted in tests.
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
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results' / 'new_names.json'
#: ``--dataset`` -> where its table is saved
DATASETS = {'new_shapes': RESULTS,
            'example': ROOT / 'benchmarks' / 'results' / 'new_names_example.json'}
UP2 = [sys.executable, '-m', 'up2core.cli']

#: shape -> category id: none of them is a Shapes shape, none of the ids is 1..8
NEW_SHAPES = {'arrow': 11, 'octagon': 23, 'trapezoid': 37, 'chevron': 58}
NEW_COLOURS = {'cyan': (20, 200, 210), 'pink': (240, 120, 190), 'brown': (120, 70, 20),
               'black': (15, 15, 15)}
#: the main job's metrics on Shapes val (what forgetting is measured on), and their short names
BASE_METRICS = {'classification/top1': 'top-1', 'retrieval/i2t_R@1': 'i2t R@1',
                'retrieval/t2i_R@1': 't2i R@1', 'detection/bbox_mAP': 'box AP',
                'detection/bbox_mAP_novel': 'novel box AP', 'segmentation/segm_mAP': 'mask AP',
                'captioning/CIDEr': 'CIDEr'}
NEW_METRICS = ('detection/bbox_mAP', 'segmentation/segm_mAP')
#: the training runs; ``<run>+wise`` is an interpolation of a finished one
VARIANTS = ('default', 'finetune', 'replay', 'anchor', 'replay-anchor', 'frozen', 'scratch',
            'keep-names', 'default-keep-names', 'tune-attn', 'default-tune-attn', 'distill',
            'default-distill', 'default-no-distill', 'default-distill-replayed',
            'default-distill-image', 'default-distill-every2', 'default-distill-image-every2',
            'default-freeze-proposals', 'default-replay0.5')
#: the first default's distillation (the shared decoder's outputs alone, on every step): what
#: the runs that name it measured before the default distilled on one step in 2, maps included
EVERY_STEP = ['--distill-every', '1', '--no-distill-image']
#: selective tuning (``--tune``): the shared decoder's attention projections only
TUNE_ATTENTION = ['decoder.layers.*.qkv.*', 'decoder.layers.*.proj.*']
DEFAULT_METHODS = ('finetune', 'replay', 'finetune+wise', 'replay+wise')
#: interpolation weights tried on the held-out data, largest first
ALPHAS = (1.0, 0.8, 0.6, 0.4)
#: the share of every old held-out metric an interpolation must keep to be chosen
KEEP_TO_CHOOSE = 0.97
#: every run's batch: the user's two tasks and the replayed five at 8 images
BATCHES = [f'train_dataloader.{task}.batch_size=8' for task in
           ('detection', 'segmentation', 'classification', 'retrieval', 'captioning')]


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
                     seed: int = 0, num_holdout: int = 60) -> Path:
    """Write the new dataset and its dataset files (``data.yaml``; ``holdout.yaml``, whose
    val is the held-out split); return the first's path."""
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val), ('holdout', num_holdout)):
        _split(out, split, count, rng, size)
    for name, val in (('data', 'val'), ('holdout', 'holdout')):
        entry = ('{train: {ann: annotations/train.json, images: images/train}, '
                 f'val: {{ann: annotations/{val}.json, images: images/{val}}}}}')
        (out / f'{name}.yaml').write_text(f'path: .\ndetection: {entry}\nsegmentation: {entry}\n')
    return out / 'data.yaml'


def _up2(*args: str, cwd: Path) -> tuple[float, float]:
    """Run ``up2 ARGS``; return (wall seconds, peak resident MiB of the process)."""
    start = time.perf_counter()
    with open(os.devnull, 'w') as out, tempfile.TemporaryFile('w+') as err:
        process = subprocess.Popen(UP2 + list(args), cwd=cwd, stdout=out, stderr=err, text=True,
                                   env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            err.seek(0)
            raise SystemExit(f"[new_names] failed: up2 {' '.join(args)}\n{err.read()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def _phases(out: Path) -> dict:
    """``steps_s``: seconds from the checkpoint's load to the last step's checkpoint (the
    training steps, the teacher's copy included); ``validation_s``: the final validation (a
    finetune that replays evaluates the base's tasks there too: the forgetting report), both
    from the run's log (one-second stamps)."""
    logs = sorted(out.glob('*/*.log'))
    if not logs:
        return {}
    stamps = {}
    for line in logs[-1].read_text(errors='replace').splitlines():
        for key, marker in (('start', 'Load checkpoint from'), ('saved', 'Saving checkpoint at'),
                            ('validated', 'Iter(val)')):
            if marker in line and line[:4].isdigit():
                stamp = time.mktime(time.strptime(line[:19], '%Y/%m/%d %H:%M:%S'))
                stamps.setdefault(key, stamp) if key == 'start' else stamps.update({key: stamp})
    if not {'start', 'saved', 'validated'} <= set(stamps):
        return {}
    return {'steps_s': stamps['saved'] - stamps['start'],
            'validation_s': stamps['validated'] - stamps['saved']}


def _metrics(work: Path) -> dict:
    return json.loads((work / 'metrics.json').read_text())


def _test(config: str, checkpoint: Path, work: Path, cwd: Path, *extra: str) -> dict:
    """``up2 test`` of ``checkpoint`` (once: its metrics are kept in ``work``)."""
    if not (work / 'metrics.json').is_file():
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


def _shares(after: dict, before: dict) -> dict:
    """Each old metric's share of its value before (1.0: all kept)."""
    return {k: (after.get(k) or 0.0) / before[k] for k in BASE_METRICS if before.get(k)}


def _records(results: Path = RESULTS) -> list[dict]:
    return json.loads(results.read_text())['runs'] if results.is_file() else []


def _save(records: list[dict], meta: dict, results: Path = RESULTS) -> None:
    results.write_text(json.dumps({**meta, 'runs': records}, indent=1) + '\n')


def write_example_regions(out: Path) -> Path:
    """The second dataset (``--dataset example``): ``up2 data example``'s detection and
    segmentation, Shapes' objects under eight names the benchmark was not tuned on, at six image
    sizes and aspect ratios (:data:`up2core.data.example.SIZES`); ``holdout.yaml``'s val is
    another seed's.  Written as ``data.yaml`` / ``holdout.yaml`` in ``out``."""
    from up2core.data.example import write_example_data

    for name, seed in (('data', 7), ('holdout', 8)):
        folder = out / name
        if not (folder / 'data.yaml').is_file():
            write_example_data(folder, num_train=200 if name == 'data' else 2, num_val=50,
                               seed=seed, overwrite=True)
    train = '{ann: data/annotations/train.json, images: data/images/train}'
    for name in ('data', 'holdout'):
        val = f'{{ann: {name}/annotations/val.json, images: {name}/images/val}}'
        entry = f'{{train: {train}, val: {val}}}'
        (out / f'{name}.yaml').write_text(f'path: .\ndetection: {entry}\nsegmentation: {entry}\n')
    return out / 'data.yaml'


def _pick(values: dict) -> dict:
    return {k: values.get(k) for k in BASE_METRICS}


class Bench:
    """One invocation: the data, the base's scores, and a run per (method, seed)."""

    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.results = DATASETS[args.dataset]
        if args.dataset == 'example':
            self.data = write_example_regions(self.work / 'example')
        else:
            self.data = self.work / 'new_shapes' / 'data.yaml'
            if not (self.work / 'new_shapes' / 'holdout.yaml').is_file():
                write_new_shapes(self.data.parent)
        self.shapes_holdout = self.work / 'shapes_holdout'
        if not (self.shapes_holdout / 'meta.json').is_file():
            from up2core.data.shapes import ShapesSpec, generate_shapes

            generate_shapes(self.shapes_holdout, ShapesSpec(num_train=0, num_val=100, seed=1))
        self.checkpoint = Path(args.checkpoint).resolve()
        self.records = [r for r in _records(self.results)
                        if r.get('checkpoint') == str(self.checkpoint)]
        for record in self.records:  # (runs recorded before the phases were)
            if record.get('train_s') and 'steps_s' not in record and '+' not in record['run']:
                record.update(_phases(self.work / f"{record['run']}_seed{record['seed']}"))
        self.meta = {'machine': f'{platform.machine()}, {os.cpu_count()} cpus, '
                                f'{_cpu_name()}', 'idle': args.idle, 'config': args.config,
                     'dataset': args.dataset, 'steps': args.steps, 'replay': args.replay,
                     'anchor': args.anchor,
                     'distill': args.distill,
                     'alphas': list(ALPHAS),
                     'keep_to_choose': KEEP_TO_CHOOSE, 'cfg_options': BATCHES + args.cfg_options,
                     'new_shapes': NEW_SHAPES, 'new_colours': list(NEW_COLOURS)}

    def record(self, **entry) -> None:
        self.records = [r for r in self.records
                        if (r['run'], r.get('seed')) != (entry['run'], entry.get('seed'))]
        self.records.append({'checkpoint': str(self.checkpoint), **entry})
        # what is on disk now, less this entry: another invocation may have recorded runs since
        mine = {(r['run'], r.get('seed')) for r in self.records}
        others = [r for r in _records(self.results)
                  if r.get('checkpoint') != str(self.checkpoint)
                  or (r['run'], r.get('seed')) not in mine]
        _save(others + self.records, self.meta, self.results)
        print(f'[new_names] {json.dumps(entry)}', flush=True)

    def done(self, run: str, seed) -> bool:
        return any((r['run'], r.get('seed')) == (run, seed) for r in self.records)

    def old_scores(self, checkpoint: Path, work: Path, holdout: bool = False) -> dict:
        """The main job's five tasks on Shapes val (or the held-out Shapes)."""
        extra = ['--cfg-options', f'shapes_data_root={self.shapes_holdout}'] if holdout else []
        return _test(self.args.config, checkpoint, work, ROOT, *extra)

    def new_scores(self, checkpoint: Path, work: Path, holdout: bool = False) -> dict:
        data = self.data.with_name('holdout.yaml') if holdout else self.data
        return _test(self.args.config, checkpoint, work, ROOT, '--data', str(data))

    def base(self) -> None:
        if not self.done('before', None):
            base = self.old_scores(self.checkpoint, self.work / 'base_before')
            held = self.old_scores(self.checkpoint, self.work / 'base_holdout', holdout=True)
            self.record(run='before', seed=None, base=_pick(base), holdout=_pick(held))
        if not self.done('zero_shot', None):
            zero = self.new_scores(self.checkpoint, self.work / 'zero_shot')
            self.record(run='zero_shot', seed=None, new={k: zero.get(k) for k in NEW_METRICS})

    def train(self, variant: str, seed: int) -> None:
        args = self.args
        steps = args.steps
        variant_lr, _, distill = variant.partition('_w')
        kind, _, scale = variant_lr.partition('_lr')
        distill = distill or str(args.distill)
        options = {'default': [], 'finetune': ['--plain-finetune'], 'scratch': [],
                   'frozen': ['--plain-finetune', '--freeze', 'image_encoder.backbone',
                              'text_encoder'],
                   'replay': ['--replay', str(args.replay)],
                   'anchor': ['--plain-finetune', '--anchor', str(args.anchor)],
                   'replay-anchor': ['--replay', str(args.replay), '--anchor',
                                     str(args.anchor)],
                   'keep-names': ['--plain-finetune', '--keep-names'],
                   'default-keep-names': ['--keep-names'],
                   'tune-attn': ['--plain-finetune', '--tune', *TUNE_ATTENTION],
                   'default-tune-attn': ['--tune', *TUNE_ATTENTION, *EVERY_STEP],
                   'distill': ['--plain-finetune', '--distill', distill, *EVERY_STEP],
                   'default-distill': ['--distill', distill, *EVERY_STEP],
                   'default-no-distill': ['--distill', '0'],
                   'default-distill-replayed': ['--distill', distill, *EVERY_STEP,
                                                '--distill-tasks', 'replay_*'],
                   'default-distill-image': ['--distill', distill, '--distill-image',
                                             '--distill-every', '1'],
                   'default-distill-every2': ['--distill', distill, '--distill-every', '2',
                                              '--no-distill-image'],
                   'default-distill-image-every2': ['--distill', distill, '--distill-image',
                                                    '--distill-every', '2'],
                   'default-replay0.5': ['--replay', '0.5'],
                   'default-freeze-proposals': ['--distill', distill, *EVERY_STEP, '--freeze',
                                                'image_encoder.proposal_generator']}[kind]
        if kind.startswith('replay'):  # the new data's steps stay --steps; the replayed add
            steps = round(args.steps * (1 + args.replay))
        # every run but the 'default' ones states its learning rate, so that what the CLI does
        # by default for a finetune (a lower one) never changes what a variant measures; a
        # 'default' run with _lr<scale> states it too
        lr = [] if kind.startswith('default') and not scale else \
            [f'optim_wrapper.optimizer.lr={float(scale or 1) * _config_lr(args.config):g}']
        out = self.work / f'{variant}_seed{seed}'
        final = out / f'iter_{steps}.pth'
        timing = out / 'timing.json'
        if not (final.is_file() and (out / 'metrics.json').is_file() and timing.is_file()):
            start = [] if variant == 'scratch' else ['--load-from', str(self.checkpoint)]
            seconds, memory = _up2('train', args.config, '--data', str(self.data), *start,
                                   *options, '--work-dir', str(out), '--cfg-options',
                                   f'max_iters={steps}', f'randomness.seed={seed}', *BATCHES,
                                   *lr, *args.cfg_options, cwd=ROOT)
            timing.write_text(json.dumps({'train_s': round(seconds, 1),
                                          'max_rss_mib': round(memory)}))
        new = _metrics(out)
        base = self.old_scores(_with_base_tensors(final, self.checkpoint), out / 'base_after') \
            if variant != 'scratch' else {}
        timed = json.loads(timing.read_text())
        timed.setdefault('idle', args.idle)  # what the machine was doing while it trained
        timed.update(_phases(out))
        timing.write_text(json.dumps(timed))
        self.record(run=variant, seed=seed, steps=steps, **timed,
                    new={k: new.get(k) for k in NEW_METRICS}, base=_pick(base) if base else None)

    def interpolate(self, variant: str, seed: int) -> None:
        """``variant``'s checkpoint merged with the base at the alpha the held-out data picks."""
        trained = next(r for r in self.records if (r['run'], r.get('seed')) == (variant, seed))
        out = self.work / f'{variant}_seed{seed}'
        final = _with_base_tensors(out / f"iter_{trained['steps']}.pth", self.checkpoint)
        before = next(r for r in self.records if r['run'] == 'before')['holdout']
        tried, chosen, start = [], None, time.perf_counter()
        for alpha in ALPHAS:
            merged = out / f'wise_{alpha:g}.pth'
            if alpha == 1.0:
                merged = final
            elif not merged.is_file():
                _up2('merge', str(self.checkpoint), str(final), '--alpha', str(alpha),
                     '--out', str(merged), cwd=ROOT)
            held = self.old_scores(merged, out / f'wise_{alpha:g}_holdout', holdout=True)
            worst = min(_shares(held, before).values())
            tried.append({'alpha': alpha, 'worst_share': round(worst, 4)})
            if worst >= KEEP_TO_CHOOSE:
                chosen = (alpha, merged)
                break
        if chosen is None:  # none keeps enough: the one that keeps most
            best = max(tried, key=lambda t: t['worst_share'])['alpha']
            chosen = (best, final if best == 1.0 else out / f'wise_{best:g}.pth')
        alpha, merged = chosen
        choose_s = time.perf_counter() - start
        new = self.new_scores(merged, out / f'wise_{alpha:g}_new')
        base = self.old_scores(merged, out / f'wise_{alpha:g}_base')
        self.record(run=f'{variant}+wise', seed=seed, alpha=alpha, tried=tried,
                    train_s=trained.get('train_s'), choose_s=round(choose_s, 1),
                    max_rss_mib=trained.get('max_rss_mib'),
                    new={k: new.get(k) for k in NEW_METRICS}, base=_pick(base))

    def run(self, methods: list[str]) -> None:
        self.base()
        for seed in self.args.seeds:
            for method in methods:
                if self.done(method, seed):
                    continue
                variant, _, wise = method.partition('+')
                if not self.done(variant, seed):
                    self.train(variant, seed)
                if wise:
                    self.interpolate(variant, seed)


def _config_lr(config: str) -> float:
    """The learning rate ``config`` trains at (a ``_lr<scale>`` run multiplies it)."""
    from up2core.config import load_config

    return float(load_config(config).optim_wrapper.optimizer.lr)


def _variant(name: str) -> str:
    """``name`` if it is a run this script makes (a variant, ``_lr<scale>`` allowed, and
    ``+wise``), for argparse."""
    kind, _, wise = name.partition('+')
    kind, _, weight = kind.partition('_w')
    base, _, scale = kind.partition('_lr')
    try:
        ok = base in VARIANTS and wise in ('', 'wise') and (not scale or float(scale) > 0) \
            and (not weight or ('distill' in base and float(weight) > 0))
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"{name}: give one of {', '.join(VARIANTS)}, optionally with _lr<scale> (the "
            f"config's learning rate times scale) and +wise")
    return name


def _cpu_name() -> str:
    for line in Path('/proc/cpuinfo').read_text().splitlines() if Path('/proc/cpuinfo').is_file() \
            else []:
        if line.startswith('model name'):
            return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown CPU'


def _mean_std(values: list[float], scale: float = 1.0) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def _idle(record: dict) -> bool:
    """Whether ``record``'s run trained on an idle machine (what its ``--idle`` said)."""
    return bool(record.get('train_s')) and str(record.get('idle', '')).startswith('yes')


def table(results: Path = RESULTS) -> str:
    """Mean +- std over seeds per run: the new data's AP, each old metric as the share of the
    base's value kept (%), the worst share of any old metric on any seed, time against the plain
    finetune's (from the runs that trained on an idle machine only; a busy machine's time is
    shown in brackets): the training steps' (:func:`_phases`) and the whole run's, whose final
    validation evaluates the base's tasks too when the run replays them.  Runs from the checkpoint of the
    last invocation."""
    records = _records(results)
    latest = records[-1]['checkpoint'] if records else None
    records = [r for r in records if r['checkpoint'] == latest]
    before = next(r for r in records if r['run'] == 'before')['base']
    zero = next(r for r in records if r['run'] == 'zero_shot')['new']
    short = list(BASE_METRICS.values())
    head = ['run', 'seeds', 'new: box AP', 'new: mask AP'] + [f'{s} kept %' for s in short] + \
        ['worst kept %', 'time: steps / run', 'x finetune: steps / run']
    rows = [['before (main job)', '-', '-', '-'] +
            [f'= {_mean_std([before.get(k)], 100 if "mAP" in k else 1)}' for k in BASE_METRICS] +
            ['', '', ''],
            ['zero-shot', '-'] + [_mean_std([zero[k]], 100) for k in NEW_METRICS] +
            ['100'] * len(BASE_METRICS) + ['100', '0 s', '0']]
    plain = [r for r in records if r['run'] == 'finetune' and _idle(r)]
    plain_s = statistics.mean(r['train_s'] for r in plain) if plain else None
    plain_steps = [r['steps_s'] for r in plain if r.get('steps_s')]
    plain_steps_s = statistics.mean(plain_steps) if plain_steps else None
    runs_in_order = []
    for r in records:
        if r['run'] not in ('before', 'zero_shot') and r['run'] not in runs_in_order:
            runs_in_order.append(r['run'])
    for name in runs_in_order:
        runs = [r for r in records if r['run'] == name]
        row = [name, str(len(runs))] + [_mean_std([r['new'][k] for r in runs], 100)
                                         for k in NEW_METRICS]
        shares = [_shares(r['base'], before) for r in runs if r.get('base')]
        row += [_mean_std([s.get(k) for s in shares], 100) if shares else '-'
                for k in BASE_METRICS]
        row.append(f'{100 * min(min(s.values()) for s in shares):.1f}' if shares else '-')
        timed = [r for r in runs if r.get('train_s')]
        idle_runs = [r for r in timed if _idle(r)]
        idle = [r['train_s'] + r.get('choose_s', 0) for r in idle_runs]
        seconds = idle or [r['train_s'] + r.get('choose_s', 0) for r in timed]
        steps = [r['steps_s'] for r in (idle_runs or timed) if r.get('steps_s')]
        # a time from a busy machine is shown in brackets and never compared
        shown = (f"{statistics.mean(steps):.0f} / " if steps else '') + \
            f'{statistics.mean(seconds):.0f} s' if seconds else '-'
        row.append(shown if idle or not seconds else f'({shown})')
        ratios = []
        if idle and plain_s:
            if plain_steps_s and len(steps) == len(idle_runs):
                ratios.append(f'{statistics.mean(steps) / plain_steps_s:.2f}')
            ratios.append(f'{statistics.mean(idle) / plain_s:.2f}')
        row.append(' / '.join(ratios) or '-')
        rows.append(row)
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', nargs='?', help="the main job's checkpoint")
    parser.add_argument('--config', default='up2_tiny_shapes_generalist')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS), type=_variant,
                        help='the runs to make, each seed: a variant of %(choices)s, '
                        "optionally with _lr<scale> (the config's learning rate times scale) "
                        'and +wise (default: %(default)s)'.replace('%(choices)s',
                                                                  ', '.join(VARIANTS)))
    parser.add_argument('--steps', type=int, default=100, help="steps of the new data's tasks")
    parser.add_argument('--replay', type=float, default=0.3,
                        help='replay : new steps of the replay run')
    parser.add_argument('--anchor', type=float, default=0.05,
                        help='--anchor strength of the anchor runs')
    parser.add_argument('--distill', type=float, default=1.0,
                        help='--distill weight of the distillation runs')
    parser.add_argument('--dataset', choices=list(DATASETS), default='new_shapes',
                        help="the new names: new_shapes (four shapes and colours Shapes never "
                        "draws, 128 px) or example (up2 data example's detection and "
                        'segmentation: eight new names at six image sizes); each its own table')
    parser.add_argument('--work', help='where the runs go (default: benchmarks/work/'
                        'new_names[_example])')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='more options of every training run')
    parser.add_argument('--idle', default='yes', help='was the machine idle (kept in the JSON)')
    parser.add_argument('--table', action='store_true', help='print the saved table only')
    args = parser.parse_args(argv)
    if args.work is None:
        args.work = str(ROOT / 'benchmarks' / 'work' / ('new_names' if args.dataset ==
                                                          'new_shapes' else 'new_names_example'))
    if not args.table:
        if not args.checkpoint:
            parser.error('give the main job\'s checkpoint (or --table)')
        Bench(args).run(args.methods)
    print(table(DATASETS[args.dataset]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
