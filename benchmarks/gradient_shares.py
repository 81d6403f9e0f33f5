"""Where each task's gradient goes: the share of its squared norm per part of the model.

MT-AdamW normalises each step's gradient by its global norm (``grad_norm='global'``), so a task
whose gradient is concentrated in a few parameters moves the shared ones very little.  This prints,
for one batch of every task of a config, the gradient norm and the fraction of its square that
falls in each part (image encoder, region proposals, text encoder, decoder, likelihood scales,
task heads), plus the cosine between the tasks' gradients on the shared decoder.

    python benchmarks/gradient_shares.py [--config up2_tiny_shapes_five_tasks]
        [--checkpoint work_dirs/.../iter_N.pth] [--out benchmarks/results/gradient_shares.json]

A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

PARTS = (('image_encoder.proposal_generator', 'proposals'), ('image_encoder', 'image encoder'),
         ('text_encoder', 'text encoder'), ('decoder', 'decoder'), ('likelihood', 'likelihood'),
         ('tasks', 'task heads'))


def part_of(name: str) -> str:
    for prefix, part in PARTS:
        if name.startswith(prefix):
            return part
    return 'other'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='up2_tiny_shapes_five_tasks')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--out', default='benchmarks/results/gradient_shares.json')
    parser.add_argument('--batch-size', type=int, default=8)
    args = parser.parse_args()

    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from up2core.apis import init_model
    from up2core.registry import DATASETS

    torch.manual_seed(0)
    model = init_model(args.config, args.checkpoint).train()
    init_default_scope('up2core')
    rows, decoder_grads = {}, {}
    for task, loader in model.cfg.train_dataloader.items():
        dataset = DATASETS.build(loader['dataset'])
        batch = pseudo_collate([dataset[i] for i in range(args.batch_size)])
        data = model.data_preprocessor(batch, True)
        model.zero_grad()
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        squares: dict[str, float] = {}
        flat = []
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            squares[part_of(name)] = squares.get(part_of(name), 0.0) + float(p.grad.pow(2).sum())
            if name.startswith('decoder'):
                flat.append(p.grad.flatten())
        total = sum(squares.values())
        decoder_grads[task] = torch.cat(flat) if flat else None
        rows[task] = {'norm': total ** 0.5,
                      'shares': {k: v / total for k, v in sorted(squares.items())}}
        shown = ', '.join(f'{k} {v:.1%}' for k, v in rows[task]['shares'].items())
        print(f'{task:15s} |grad| {total ** 0.5:9.3f}  {shown}', flush=True)
    names = [t for t, g in decoder_grads.items() if g is not None]
    cosines = {f'{a}~{b}': float(torch.nn.functional.cosine_similarity(
        decoder_grads[a], decoder_grads[b], dim=0)) for i, a in enumerate(names)
        for b in names[i + 1:]}
    for pair, value in cosines.items():
        print(f'decoder cosine {pair}: {value:+.3f}')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'config': args.config, 'checkpoint': args.checkpoint,
                               'tasks': rows, 'decoder_cosines': cosines}, indent=2) + '\n')


if __name__ == '__main__':
    main()
