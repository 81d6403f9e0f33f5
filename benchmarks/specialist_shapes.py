"""Generalist against specialist on Shapes detection: UP2's regions config vs mmdet's DINO.

    python benchmarks/specialist_shapes.py --seeds 0 1 2 [--jobs 2] [--reuse]
    python benchmarks/specialist_shapes.py --latency [--up2-checkpoint CKPT] [--dino-checkpoint CKPT]
        [--up2-variant KEY=VALUE ... [--up2-variant-checkpoint CKPT]] [--random-weights]
    python benchmarks/specialist_shapes.py --table

**The specialist** is mmdet's own DINO, built from mmdet's ``dino-4scale_r50_8xb2-12e_coco.py``
with only what makes it comparable changed: UP2's backbone (EfficientNet-Lite0, ImageNet
weights, the same frozen stages), and a transformer the size of UP2's proposal network (3
levels at strides 8/16/32, 2 encoder and 3 decoder layers, FFN 512, 30 queries).  DINO's own
parts stay: denoising queries (100, dynamic groups), focal classification over the names,
Hungarian matching, look-forward-twice box refinement.  It is closed-set: one logit per name
of the 52 seen in training (:class:`SeenNamesDINO` maps them to the 56 of the val annotations;
the 4 held-out names it cannot name at all).  Same images, pipeline and steps as
``up2_tiny_shapes_regions`` (450 steps of 8 images); optimisation as the DESIGN notes measured
for DETR-family networks from scratch on 2 cores (AdamW lr 1e-3, grad-clip 1.0, backbone
lr x 0.1, warm-up 50 steps then cosine); ``--lr`` trains it at another learning rate (rows are
kept per seed and learning rate, so each model is compared at its best).

**The generalist** is UP2's ``up2_tiny_shapes_regions`` (its 450-step rows of
``benchmarks/results/ablations.json``, ``--up2-runs``, trained by ``benchmarks/ablations.py --runs
regions_sep_lr3e-4_450``, the packaged config with its separable pixel decoder; or
``regions_lr<lr>_450`` (the full 3 x 3 pixel decoder it had before), ``regions_dn_lr<lr>_450``
(with DINO's denoising queries): the same seeds, recorded once).  It names proposals by likelihood over
the names' text embeddings, so it scores the held-out names too.

Both are scored by the same evaluator: ``GroupedCocoMetric`` (one ``COCOeval``) on the val
annotations, AP over all 56 names, the 52 seen and the 4 held out.  ``--latency`` times one
val image at a time through each model's predict path (after the data preprocessor, same
128 px tensors), medians over ``--images`` images, alternating the models: run it on an
idle machine.  ``--up2-variant`` times a changed UP2 in the same run (a cheaper mask branch,
say); ``--random-weights`` times untrained models (no checkpoints needed), saved apart, and
with ``--up2-variant-checkpoint`` the variant's trained weights beside its random ones: whether
an untrained model takes a trained one's time (both models do fixed-size work: a fixed number
of queries, a fixed top-k, no NMS).  Results go to ``benchmarks/results/specialist_shapes.json``; a measurement,
never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results' / 'specialist_shapes.json'
ABLATIONS = ROOT / 'benchmarks' / 'results' / 'ablations.json'
KEYS = ('bbox_mAP', 'bbox_mAP_seen', 'bbox_mAP_novel', 'bbox_mAP_50_seen', 'bbox_mAP_75')


def _regions_base():
    """The regions config's data settings (names, loaders, evaluator), as UP2 trains them."""
    from up2core.config import load_config

    return load_config('up2_tiny_shapes_regions')


def dino_config(seed: int, steps: int, work_dir: str, lr: float = 1e-3,
                data_root: str | None = None):
    """mmdet's DINO config, changed only where the comparison needs it (see the module doc)."""
    import mmdet
    from mmengine.config import Config

    up2 = _regions_base()
    if data_root:
        from up2core.config import move_data_root

        move_data_root(up2, up2.regions_data_root, data_root)
    path = Path(mmdet.__file__).parent / '.mim' / 'configs' / 'dino' / \
        'dino-4scale_r50_8xb2-12e_coco.py'
    cfg = Config.fromfile(str(path))
    seen, names = list(up2.shapes_seen_names), list(up2.shapes_all_names)
    model = cfg.model
    model.type = 'SeenNamesDINO'
    model.label_map = [names.index(n) for n in seen]
    model.num_queries = 30
    model.num_feature_levels = 3
    model.data_preprocessor.update(mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True)
    model.backbone = dict(type='up2core.EfficientNetLite0', pretrained='pkg',
                          out_strides=(8, 16, 32), frozen_stages=2)
    model.neck.update(in_channels=[40, 112, 320], num_outs=3)
    model.encoder.num_layers = 2
    model.encoder.layer_cfg.self_attn_cfg.num_levels = 3
    model.encoder.layer_cfg.ffn_cfg.feedforward_channels = 512
    model.decoder.num_layers = 3
    model.decoder.layer_cfg.cross_attn_cfg.num_levels = 3
    model.decoder.layer_cfg.ffn_cfg.feedforward_channels = 512
    model.bbox_head.num_classes = len(seen)
    model.test_cfg.max_per_img = 100

    def loader(split: str, source) -> dict:
        train = split == 'train'
        dataset = dict(source.dataset)
        # UP2's pipeline minus its own packing step: DINO takes mmdet's DetDataSamples
        dataset['pipeline'] = [dict(t, type=t['type'].removeprefix('mmdet.'))
                               for t in dataset['pipeline'] if t['type'] != 'PackUP2Inputs']
        dataset['type'] = 'up2core.CocoInstances'
        return dict(batch_size=8 if train else 50, num_workers=1, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=train),
                    collate_fn=dict(type='pseudo_collate'), dataset=dataset)

    warmup = min(50, steps // 4)  # as the regions config; shorter for a quick try
    evaluator = dict(up2.val_evaluator.detection)
    evaluator.update(type='up2core.GroupedCocoMetric', prefix='detection')
    return Config(dict(
        default_scope='mmdet', model=model, work_dir=work_dir,
        train_dataloader=loader('train', up2.train_dataloader.detection),
        val_dataloader=loader('val', up2.val_dataloader.detection), val_evaluator=evaluator,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=steps, val_interval=steps),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(type='OptimWrapper', clip_grad=dict(max_norm=1.0, norm_type=2),
                           optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
                           paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=steps,
                 eta_min_ratio=0.05)],
        default_hooks=dict(timer=dict(type='IterTimerHook'),
                           logger=dict(type='LoggerHook', interval=50),
                           param_scheduler=dict(type='ParamSchedulerHook'),
                           checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=steps),
                           sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[dict(type='up2core.MetricsFileHook')],
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                     mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0)),
        randomness=dict(seed=seed), launcher='none'))


def register_dino() -> None:
    """Register :class:`SeenNamesDINO` (mmdet's DINO, labels mapped to the val names)."""
    from mmdet.models.detectors import DINO
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import up2core  # noqa: F401  (UP2's registries: backbone, dataset, metric, hooks)
    from up2core.plugin import load_plugins

    load_plugins()

    register_all_modules(init_default_scope=False)
    if 'SeenNamesDINO' in MODELS:
        return

    @MODELS.register_module()
    class SeenNamesDINO(DINO):
        """DINO whose label ``i`` (the i-th seen name) is reported as ``label_map[i]``."""

        def __init__(self, *args, label_map: list[int], **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.label_map = list(label_map)

        def predict(self, batch_inputs, batch_data_samples, rescale: bool = True):
            samples = super().predict(batch_inputs, batch_data_samples, rescale=rescale)
            for sample in samples:
                labels = sample.pred_instances.labels
                lookup = labels.new_tensor(self.label_map)
                sample.pred_instances.labels = lookup[labels]
            return samples


def train_dino(seed: int, steps: int, work_dir: Path, lr: float) -> dict:
    """Train and evaluate one DINO in this process; the val metrics."""
    from mmengine.runner import Runner

    register_dino()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    runner = Runner.from_cfg(dino_config(seed, steps, str(work_dir), lr))
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    return {'model': f'dino lr {lr:g}', 'seed': seed, 'steps': steps, 'lr': lr,
            'wall_train_s': round(wall, 1), 'checkpoint': str(work_dir / f'iter_{steps}.pth'),
            'metrics': {k: v for k, v in metrics.items() if k.startswith('detection/')
                        or k.startswith('bbox') or k == 'iter'}}


def up2_rows(runs: list[str]) -> list[dict]:
    """UP2's rows of the ablation ``runs`` (e.g. ``regions_lr1e-3_450``) from their file."""
    if not ABLATIONS.is_file():
        return []
    rows = json.loads(ABLATIONS.read_text())['results']
    return [dict(model=f"up2 {r['run']}", seed=r['seed'], wall_train_s=r['wall_train_s'],
                 metrics=r['metrics'], run=r['run'])
            for run in runs for r in rows if r['run'] == run]


def _metric(metrics: dict, key: str) -> float | None:
    for name in (f'detection/{key}', key):
        if name in metrics:
            return metrics[name]
    return None


def table(rows: list[dict]) -> str:
    out = ['| model | seeds | ' + ' | '.join(KEYS) + ' |', '| --- | --- |' + ' --- |' * len(KEYS)]
    for model in dict.fromkeys(r['model'] for r in rows):
        group = [r for r in rows if r['model'] == model]
        if not group:
            continue
        cells = []
        for key in KEYS:
            values = [v for v in (_metric(r['metrics'], key) for r in group)
                      if v is not None and not math.isnan(v) and v >= 0]
            if not values:
                cells.append('-')
            elif len(values) == 1:
                cells.append(f'{values[0]:.3f}')
            else:
                cells.append(f'{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}')
        out.append(f'| {model} | {len(group)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(out)


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {'dino': [], 'latency': None}


def _save(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + '\n')


def latency(up2_checkpoint: str | None, dino_checkpoint: str | None, images: int, lr: float,
            variant_options: list[str] | None = None,
            variant_checkpoint: str | None = None,
            trained_variant_checkpoint: str | None = None) -> dict:
    """Median seconds per image of each model's predict path, alternating the models.

    A checkpoint of None times the model with random weights; ``variant_options``
    (cfg-options) adds a changed UP2 beside the packaged one, from ``variant_checkpoint`` or
    random weights.  ``trained_variant_checkpoint`` also times the variant with trained
    weights beside its random-weight copy: the check that a timing with random weights stands
    for a trained model's (both models run fixed-size work: a fixed number of queries, a fixed
    top-k and no NMS)."""
    import torch
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from up2core.apis import init_model

    register_dino()
    models = {'up2': init_model('up2_tiny_shapes_regions', up2_checkpoint)}
    if variant_options:
        models['up2_variant'] = init_model('up2_tiny_shapes_regions', variant_checkpoint,
                                           cfg_options=variant_options)
        if trained_variant_checkpoint:
            models['up2_variant_trained'] = init_model(
                'up2_tiny_shapes_regions', trained_variant_checkpoint, cfg_options=variant_options)
    cfg = dino_config(0, 450, '/tmp/up2-specialist-latency', lr)
    init_default_scope('mmdet')
    dino = MMDET_MODELS.build(cfg.model)
    if dino_checkpoint:
        load_checkpoint(dino, dino_checkpoint, map_location='cpu')
    models['dino'] = dino.eval()
    init_default_scope('up2core')
    data = _regions_base().val_dataloader.detection.dataset
    pipeline = Compose([t for t in data.pipeline])
    folder = Path(data.data_root) / data.data_prefix['img']
    paths = sorted(folder.glob('*.png'))[:images]
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    with torch.no_grad():
        for i, path in enumerate(paths):
            packed = pipeline(dict(img_path=str(path), img_id=i))
            sample = packed['data_samples']
            sample.set_metainfo(dict(task='detection'))
            batch = {'inputs': [packed['inputs']], 'data_samples': [sample]}
            for name in names[i % len(names):] + names[:i % len(names)]:  # rotate the order
                model = models[name]
                start = time.perf_counter()
                data_batch = model.data_preprocessor(batch, False)
                if name.startswith('up2'):
                    model.tasks['detection'].infer(model, data_batch['inputs'],
                                                   data_batch['data_samples'])
                else:
                    model(data_batch['inputs'], data_batch['data_samples'], mode='predict')
                if i > 0:  # the first image warms every model up
                    times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(values) * 1000 for name, values in times.items()}
    record = {'up2_ms_per_image': round(ms['up2'], 1), 'dino_ms_per_image': round(ms['dino'], 1),
              'up2_over_dino': round(ms['up2'] / ms['dino'], 3)}
    if variant_options:
        record.update(up2_variant_options=variant_options,
                      up2_variant_ms_per_image=round(ms['up2_variant'], 1),
                      up2_variant_over_dino=round(ms['up2_variant'] / ms['dino'], 3),
                      up2_variant_checkpoint=variant_checkpoint)
    if 'up2_variant_trained' in ms:
        record.update(up2_variant_trained_ms_per_image=round(ms['up2_variant_trained'], 1),
                      up2_variant_trained_checkpoint=trained_variant_checkpoint)
    return {**record, 'images': len(paths) - 1, 'torch_threads': torch.get_num_threads(),
            'cpus': os.cpu_count(), 'up2_checkpoint': up2_checkpoint,
            'dino_checkpoint': dino_checkpoint}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=450)
    parser.add_argument('--lr', type=float, default=1e-3, help="DINO's learning rate")
    parser.add_argument('--up2-runs', nargs='+', default=['regions_sep_lr3e-4_450'],
                        help="UP2's side: rows of benchmarks/ablations.py runs of the regions "
                             "config (450 steps: the same as DINO's)")
    parser.add_argument('--jobs', type=int, default=1,
                        help='DINO trainings at a time, each with cores / jobs threads')
    parser.add_argument('--reuse', action='store_true', help='skip seeds the results hold')
    parser.add_argument('--work-root', default='work_dirs/specialist')
    parser.add_argument('--out', default=str(RESULTS))
    parser.add_argument('--table', action='store_true', help='only print the table')
    parser.add_argument('--latency', action='store_true', help='time both models (idle machine)')
    parser.add_argument('--up2-checkpoint')
    parser.add_argument('--dino-checkpoint')
    parser.add_argument('--images', type=int, default=51)
    parser.add_argument('--random-weights', action='store_true',
                        help='--latency with untrained models (no checkpoints needed; saved as '
                             '"latency_random_weights")')
    parser.add_argument('--up2-variant', nargs='+', metavar='KEY=VALUE',
                        help='--latency: also time UP2 with these cfg-options, e.g. '
                             '+model.image_encoder.proposal_generator.pixel_decoder=separable')
    parser.add_argument('--up2-variant-checkpoint',
                        help="the variant's weights; with --random-weights, the variant is "
                             'timed with these weights too, beside its random-weight copy')
    parser.add_argument('--train-one', type=int, help=argparse.SUPPRESS)  # a worker: one seed
    parser.add_argument('--row-out', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.train_one is not None:
        row = train_dino(args.train_one, args.steps, Path(args.work_root) / f'dino_seed'
                         f'{args.train_one}', args.lr)
        Path(args.row_out).write_text(json.dumps(row))
        return 0
    record = _load(Path(args.out))
    if args.latency:
        if args.up2_variant_checkpoint and not args.up2_variant:
            parser.error('--up2-variant-checkpoint needs --up2-variant (the options that build '
                         'the model it belongs to)')
        up2_ckpt = dino_ckpt = None
        if not args.random_weights:
            up2_ckpt = args.up2_checkpoint or next(
                (f"work_dirs/ablations/{r['run']}_seed{r['seed']}/iter_450.pth"
                 for r in up2_rows(args.up2_runs[:1])), None)
            dino_ckpt = args.dino_checkpoint or next(
                (r['checkpoint'] for r in record['dino']), None)
            if not (up2_ckpt and dino_ckpt):
                parser.error('--latency needs both checkpoints (train first, or pass them; or '
                             '--random-weights)')
            if args.up2_variant and not args.up2_variant_checkpoint:
                parser.error('--up2-variant with trained models needs --up2-variant-checkpoint '
                             '(or --random-weights)')
        key = 'latency_random_weights' if args.random_weights else 'latency'
        record[key] = latency(up2_ckpt, dino_ckpt, args.images, args.lr, args.up2_variant,
                              None if args.random_weights else args.up2_variant_checkpoint,
                              args.up2_variant_checkpoint if args.random_weights else None)
        print(json.dumps(record[key], indent=2))
        _save(record, Path(args.out))
        return 0
    if not args.table:
        todo = [s for s in args.seeds if not (args.reuse and any(
            (r['seed'], r['lr']) == (s, args.lr) for r in record['dino']))]
        threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None

        def one(seed: int) -> dict:
            out = Path(args.work_root) / f'dino_seed{seed}.json'
            out.parent.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            if threads:
                env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            log = Path(args.work_root) / f'dino_seed{seed}.log'
            with log.open('w') as handle:
                subprocess.run([sys.executable, __file__, '--train-one', str(seed), '--steps',
                                str(args.steps), '--lr', str(args.lr), '--work-root',
                                args.work_root, '--row-out', str(out)], check=True, env=env,
                               stdout=handle, stderr=subprocess.STDOUT)
            row = json.loads(out.read_text())
            row.update(jobs=args.jobs, threads=threads or env.get('OMP_NUM_THREADS'))
            return row

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed([pool.submit(one, s) for s in todo]):
                row = future.result()
                record['dino'] = [r for r in record['dino']
                                  if (r['seed'], r['lr']) != (row['seed'], row['lr'])] + [row]
                _save(record, Path(args.out))
                print(f"dino seed {row['seed']}: {row['wall_train_s']} s, "
                      f"AP {_metric(row['metrics'], 'bbox_mAP')}", flush=True)
    for row in record['dino']:  # rows written before the learning rate was part of the name
        row['model'] = f"dino lr {row['lr']:g}"
    print(table(up2_rows(args.up2_runs) + record['dino']))
    if record.get('latency'):
        lat = record['latency']
        print(f"latency: UP2 {lat['up2_ms_per_image']} ms, DINO {lat['dino_ms_per_image']} ms "
              f"per image ({lat['up2_over_dino']}x)")
    return 0


def latency_table(latency: dict) -> str:
    """The saved latency comparison as a Markdown table (docs/ablations.md)."""
    dino = latency['dino_ms_per_image']
    rows = [('UP2 `up2_tiny_shapes_regions`', latency['up2_ms_per_image'])]
    if latency.get('up2_variant_ms_per_image') is not None:
        options = ' '.join(latency.get('up2_variant_options', []))
        rows.append((f'UP2 with `{options}`', latency['up2_variant_ms_per_image']))
    rows.append(('DINO (specialist, closed-set)', dino))
    lines = ['| model | ms per image | / DINO |', '|---|---|---|']
    lines += [f'| {label} | {ms:.1f} | {ms / dino:.2f}x |' for label, ms in rows]
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
