"""Channels-last against the default memory order: the image encoder's forward + backward,
alternated in one process so that both see the same machine.

    python benchmarks/channels_last.py [--config up2_tiny_shapes_generalist] [--batch 16 32]
        [--rounds 6]

For each batch size, ``--rounds`` rounds, each timing one forward + backward of the image
encoder (backbone, neck, region proposals) in the default order and one in channels-last order,
in alternating order (this VM's speed drifts over minutes: separate runs do not compare); and
the largest difference of the two encoders' outputs with the same weights.  JSON to ``benchmarks/results/channels_last.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _step(encoder, images: torch.Tensor) -> float:
    start = time.perf_counter()
    out = encoder(images)
    loss = out.tokens.mean()
    if out.proposals:
        loss = loss + out.proposals['masks'].mean() + out.proposals['boxes'].mean()
    loss.backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='up2_tiny_shapes_generalist')
    parser.add_argument('--batch', type=int, nargs='+', default=[16, 32])
    parser.add_argument('--rounds', type=int, default=6)
    args = parser.parse_args(argv)

    from mmengine.registry import init_default_scope

    import up2core  # noqa: F401
    from up2core.config import load_config
    from up2core.registry import MODELS

    init_default_scope('up2core')
    cfg = load_config(args.config).model.image_encoder
    torch.manual_seed(0)
    default = MODELS.build(dict(cfg, channels_last=False)).train()
    last = MODELS.build(dict(cfg, channels_last=True)).train()
    last.load_state_dict(default.state_dict())
    size = 128
    # Same weights, same numbers (measured before timing: training-mode steps update the batch
    # norms' running statistics, after stochastic depth, differently in each copy).
    with torch.no_grad():
        images = torch.randn(4, 3, size, size)
        diff = float((default.eval()(images).tokens - last.eval()(images).tokens).abs().max())
    default.train(), last.train()
    record = {'config': args.config, 'torch_threads': torch.get_num_threads(),
              'max_token_difference': diff, 'batches': {}}
    for batch in args.batch:
        images = torch.randn(batch, 3, size, size)
        _step(default, images), _step(last, images)  # warm-up
        times = {'default': [], 'channels_last': []}
        for index in range(args.rounds):
            order = [('default', default), ('channels_last', last)]
            for name, encoder in (order if index % 2 == 0 else order[::-1]):
                times[name].append(_step(encoder, images))
        medians = {k: statistics.median(v) for k, v in times.items()}
        record['batches'][batch] = {'seconds': medians,
                                    'speed_up': medians['default'] / medians['channels_last']}
        print(f"[channels_last] batch {batch}: default {medians['default']:.3f} s, "
              f"channels-last {medians['channels_last']:.3f} s "
              f"({medians['default'] / medians['channels_last']:.2f}x); outputs differ by {diff:.1e}",
              flush=True)
    out = ROOT / 'benchmarks' / 'results' / 'channels_last.json'
    out.write_text(json.dumps(record, indent=2) + '\n')
    print(f'[channels_last] wrote {out.relative_to(ROOT)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
