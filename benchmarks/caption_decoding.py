"""Captioning decode speed: incremental (key/value cache) vs full recomputation, beam 1 vs 3.

Same model, same images, one run.  Every caption is forced to exactly ``--length`` tokens
(``min_length = max_length``), so the four settings decode the same number of positions and the
ratios compare like with like.  Without ``--checkpoint`` the model has its initial weights (the
pre-trained encoders, a random decoder): speed does not depend on what the weights say.

    python benchmarks/caption_decoding.py [--config up2_tiny_shapes_captioning]
        [--checkpoint CKPT] [--images 16] [--length 20] [--repeats 2]
        [--out benchmarks/results/caption_decoding.json]

Prints captions per second for each setting (image encoding included), the time spent decoding
(total minus the image encoder's time, measured apart), the speed-ups, and saves them as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from functools import partial
from pathlib import Path

import torch


def load_images(model, count: int) -> torch.Tensor:
    """``count`` Shapes val images through the config's test pipeline and preprocessor."""
    from mmengine.dataset import Compose, pseudo_collate

    from up2core.data.prepare import prepare_data

    loader = model.cfg.val_dataloader['captioning']
    dataset = loader['dataset']
    if dataset.get('prepare'):
        prepare_data(dataset['data_root'], dataset['prepare'])
    folder = Path(dataset['data_root']) / dataset['data_prefix']['img']
    files = sorted(folder.glob('*.png'))[:count]
    if len(files) < count:
        raise SystemExit(f'{folder} has {len(files)} images, fewer than --images {count}')
    pipeline = Compose(list(dataset['pipeline']))
    samples = [pipeline(dict(img_path=str(f), texts=['unused'])) for f in files]
    return model.data_preprocessor(pseudo_collate(samples), False)['inputs']


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='up2_tiny_shapes_captioning')
    parser.add_argument('--checkpoint')
    parser.add_argument('--images', type=int, default=16)
    parser.add_argument('--length', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=2, help='timed runs per setting (best '
                        'kept), after one warm-up')
    parser.add_argument('--out', default='benchmarks/results/caption_decoding.json')
    args = parser.parse_args(argv)

    from up2core.apis import init_model

    torch.manual_seed(0)
    model = init_model(args.config, args.checkpoint)
    task = model.tasks['captioning']
    task.min_length = task.max_length = args.length
    inputs = load_images(model, args.images)
    rows = []
    with torch.no_grad():
        task.candidate_features(model)  # encoded once, cached for every setting
        # The image encoder's share, the same in every setting (decoding alone = total - this).
        encode_s = min(_timed(lambda: model.image_segments(model.encode_image(inputs)))
                       for _ in range(args.repeats + 1))
        for beam in (1, 3):
            for incremental in (True, False):
                run = partial(task.generate, model, inputs, beam_size=beam,
                              incremental=incremental)
                generated = run()  # warm-up
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    generated = run()
                    times.append(time.perf_counter() - start)
                lengths = {len(t) for t in generated.tokens}
                rows.append(dict(beam=beam, incremental=incremental, seconds=min(times),
                                 decode_s=min(times) - encode_s,
                                 captions_per_s=args.images / min(times),
                                 tokens=sorted(lengths)))
                print(f"beam {beam}  {'incremental' if incremental else 'full recompute':15s}"
                      f"  {args.images / min(times):7.2f} captions/s  ({min(times):.2f} s for "
                      f"{args.images} images, of which decoding {min(times) - encode_s:.2f} s; "
                      f"{sorted(lengths)} tokens)")

    def rate(beam, incremental):
        return next(r['captions_per_s'] for r in rows
                    if r['beam'] == beam and r['incremental'] == incremental)

    def decode(beam, incremental):
        return next(r['decode_s'] for r in rows
                    if r['beam'] == beam and r['incremental'] == incremental)

    ratios = {
        'incremental_vs_full_beam1': rate(1, True) / rate(1, False),
        'incremental_vs_full_beam3': rate(3, True) / rate(3, False),
        'beam1_vs_beam3_incremental': rate(1, True) / rate(3, True),
        'decoding_only_incremental_vs_full_beam1': decode(1, False) / decode(1, True),
        'decoding_only_incremental_vs_full_beam3': decode(3, False) / decode(3, True),
    }
    for key, value in ratios.items():
        print(f'{key}: {value:.2f}x')
    print(f'image encoding alone: {encode_s:.2f} s for {args.images} images')
    result = dict(config=args.config, checkpoint=args.checkpoint, images=args.images,
                  encode_s=encode_s,
                  length=args.length, threads=torch.get_num_threads(),
                  machine=platform.processor() or platform.machine(), rows=rows, ratios=ratios)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'saved {out}')
    return result


def table(record: dict) -> str:
    """The Markdown table of a saved run (docs/results.md)."""
    lines = [f"| setting | captions / s | seconds for {record['images']} images (decoding alone) |",
             '|---|---|---|']
    for row in record['rows']:
        how = 'incremental (cache)' if row['incremental'] else 'full recomputation'
        lines.append(f"| beam {row['beam']}, {how} | {row['captions_per_s']:.1f} | "
                     f"{row['seconds']:.2f} ({row['decode_s']:.2f}) |")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
