"""Inference latency per image on the CPU: UP2 every task, UP2 detection only, and mmdet's own
DINO-R50 detection only, at the same input size, in the same run.

    python benchmarks/inference_latency.py [--size 512] [--repeats 3] [--tiny-checkpoint CKPT]

* **Paper scale, equal backbone**: UP2 with a ResNet-50 (``up2_base_swinb_in1k_coco``'s five
  tasks, its backbone swapped for mmdet's ResNet-50 as in ``up2_r50_in1k_coco``: 300
  queries, 200 region tokens, 6-layer 768-wide MoE decoder) against mmdet's
  ``dino-4scale_r50_8xb2-12e_coco`` built from mmdet's own config.  Random weights for both
  (latency does not depend on them, except UP2's caption length, which is fixed here by
  ``min_length = max_length``).  Both take the same preprocessed ``size x size`` image: the
  timings are of the models, not of image decoding.  UP2's candidates (class names,
  vocabulary) are encoded once per loaded model, before timing (a small stand-in vocabulary:
  the COCO captions are not on this machine; a step's cost over ~10k candidates is one
  [1 x 768] x [768 x 10k] product).
* **Tiny**: ``up2_tiny_shapes_generalist`` at 128 px, every task vs detection only, and
  ``up2 infer``'s batched folder path (:func:`up2core.apis.inference.iter_inference`) in
  images/s at batch 1 and 8 over Shapes val images.

Medians of ``--repeats`` timed calls after one warm-up call.  JSON goes to
``benchmarks/results/inference_latency.json``; run it on an idle machine.  A measurement, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))

TEXTS = ['a man riding a horse on a beach .', 'two dogs play with a red ball in the grass .',
         'a plate of food on a wooden table .']


def _median_seconds(call, repeats: int) -> float:
    call()  # warm-up: caches candidates, allocators
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _samples(task: str, size: int, count: int = 1):
    from mmengine.structures import BaseDataElement

    meta = dict(task=task, img_shape=(size, size), ori_shape=(size, size),
                scale_factor=(1.0, 1.0), flip=False)
    return [BaseDataElement(metainfo=meta) for _ in range(count)]


@torch.no_grad()
def up2_latency(model, size: int, repeats: int, caption_length: int | None = None) -> dict:
    """Seconds per image: every task under one shared encoding, and detection alone."""
    inputs = model.data_preprocessor(
        {'inputs': [torch.randint(0, 255, (3, size, size), dtype=torch.uint8)],
         'data_samples': _samples('detection', size)}, False)['inputs']
    if caption_length is not None and 'captioning' in model.tasks:
        captioning = model.tasks['captioning']
        captioning.max_length = captioning.min_length = caption_length
    tasks = list(model.tasks)

    def every_task():
        with model.shared_encoding():
            for task in tasks:
                model.tasks[task].infer(model, inputs, _samples(task, size), texts=TEXTS)

    def each_task_alone():
        for task in tasks:
            model.tasks[task].infer(model, inputs, _samples(task, size), texts=TEXTS)

    def detection_only():
        model.tasks['detection'].infer(model, inputs, _samples('detection', size))

    return {'all_tasks_s': _median_seconds(every_task, repeats),
            'each_task_alone_summed_s': _median_seconds(each_task_alone, repeats),
            'detection_only_s': _median_seconds(detection_only, repeats), 'tasks': tasks}


@torch.no_grad()
def dino_latency(size: int, repeats: int) -> dict:
    """Seconds per image of mmdet's DINO-4scale R50 (its own config, random weights)."""
    import mmdet
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules(init_default_scope=True)
    path = Path(mmdet.__file__).parent / '.mim' / 'configs' / 'dino' / \
        'dino-4scale_r50_8xb2-12e_coco.py'
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # no download: random weights
    model = MMDET_MODELS.build(cfg.model).eval()
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                batch_input_shape=(size, size), pad_shape=(size, size))
    batch = model.data_preprocessor(
        {'inputs': [torch.randint(0, 255, (3, size, size), dtype=torch.uint8)],
         'data_samples': [DetDataSample(metainfo=meta)]}, False)

    def detect():
        model(batch['inputs'], batch['data_samples'], mode='predict')

    parameters = sum(p.numel() for p in model.parameters())
    return {'detection_only_s': _median_seconds(detect, repeats), 'config': path.name,
            'parameters': parameters}


def paper_scale_up2():
    """UP2's five tasks with mmdet's ResNet-50 backbone (``up2_r50_in1k_coco``, random
    weights); the evaluation-only Flickr30k retrieval task is left out."""
    from model_size import offline_config

    from up2core.registry import MODELS

    cfg = offline_config('up2_r50_in1k_coco')
    cfg.model.tasks.pop('flickr30k_retrieval', None)
    model = MODELS.build(cfg.model).eval()
    return model


def folder_throughput(model, images: list[str], batch_sizes=(1, 8)) -> dict:
    """Images/s of the batched path ``up2 infer`` takes over a folder, every task."""
    from up2core.apis.inference import iter_inference, runnable_tasks

    tasks = runnable_tasks(model, list(model.tasks), {'texts': TEXTS})
    out = {}
    for batch_size in batch_sizes:
        list(iter_inference(model, images[:batch_size], tasks, batch_size, texts=TEXTS))
        start = time.perf_counter()
        done = sum(1 for _ in iter_inference(model, images, tasks, batch_size, texts=TEXTS))
        out[f'batch_{batch_size}_images_per_s'] = done / (time.perf_counter() - start)
    out['images'] = len(images)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=512, help='paper-scale input side (px)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--caption-length', type=int, default=16,
                        help='tokens every caption is decoded to (random weights stop anywhere)')
    parser.add_argument('--tiny-checkpoint', help='trained weights of the tiny generalist')
    parser.add_argument('--folder-images', type=int, default=48)
    parser.add_argument('--skip-paper-scale', action='store_true')
    args = parser.parse_args(argv)

    import up2core  # noqa: F401
    from up2core.apis import init_model

    record: dict = {'torch_threads': torch.get_num_threads(), 'cpus': os.cpu_count(),
                    'torch': torch.__version__, 'size': args.size, 'repeats': args.repeats}
    if not args.skip_paper_scale:
        dino = dino_latency(args.size, args.repeats)
        print(f"[latency] mmdet DINO-R50 detection: {dino['detection_only_s']:.2f} s/image",
              flush=True)
        from mmengine.registry import init_default_scope

        init_default_scope('up2core')
        model = paper_scale_up2()
        up2 = up2_latency(model, args.size, args.repeats, args.caption_length)
        del model
        record['paper_scale'] = {
            'dino_r50': dino, 'up2_r50': up2,
            'up2_all_tasks_over_dino': up2['all_tasks_s'] / dino['detection_only_s'],
            'up2_detection_over_dino': up2['detection_only_s'] / dino['detection_only_s']}
        print(f"[latency] UP2-R50 every task: {up2['all_tasks_s']:.2f} s, detection only: "
              f"{up2['detection_only_s']:.2f} s, each task alone summed: "
              f"{up2['each_task_alone_summed_s']:.2f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        from up2core.data.prepare import prepare_data

        data = Path(tmp) / 'shapes'
        prepare_data(str(data), dict(type='shapes', num_train=8, num_val=args.folder_images,
                                     image_size=128, seed=0))
        options = [f'shapes_data_root={data}']
        tiny = init_model('up2_tiny_shapes_generalist', args.tiny_checkpoint,
                          cfg_options=options)
        record['tiny'] = up2_latency(tiny, 128, args.repeats * 3)
        images = sorted(str(p) for p in (data / 'images' / 'val').glob('*.png'))
        record['tiny']['folder'] = folder_throughput(tiny, images)
        record['tiny']['checkpoint'] = args.tiny_checkpoint
    print(f"[latency] tiny every task: {record['tiny']['all_tasks_s'] * 1000:.0f} ms, detection "
          f"only: {record['tiny']['detection_only_s'] * 1000:.0f} ms; folder: "
          f"{record['tiny']['folder']}", flush=True)
    out = ROOT / 'benchmarks' / 'results' / 'inference_latency.json'
    out.write_text(json.dumps(record, indent=2) + '\n')
    print(f'[latency] wrote {out.relative_to(ROOT)}')
    return 0


def table(record: dict) -> str:
    """The paper-scale rows of a saved run as a Markdown table (docs/inference.md)."""
    scale = record['paper_scale']
    dino, up2 = scale['dino_r50']['detection_only_s'], scale['up2_r50']
    rows = [
        ("mmdet DINO-4scale R50 (mmdet's own config, random weights), detection", dino),
        ("UP2 with a ResNet-50 (UP2-Base's five tasks: 300 queries, 200 region tokens, 6-layer "
         "768-wide MoE decoder), detection only", up2['detection_only_s']),
        ('the same UP2-R50, all five tasks (captions decoded to 16 tokens, beam 3; 3 texts '
         'ranked)', up2['all_tasks_s']),
        ('the same five tasks called one by one (no shared encoding)',
         up2['each_task_alone_summed_s']),
    ]
    lines = [f"| model, {record['size']} x {record['size']} input | seconds per image | "
             f'vs DINO-R50 |', '|---|---|---|']
    lines += [f'| {label} | {seconds:.2f} | {seconds / dino:.2f}x |' for label, seconds in rows]
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
