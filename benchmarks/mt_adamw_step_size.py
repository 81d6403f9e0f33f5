"""How large MT-AdamW's steps are next to AdamW's, as the number of unmixed tasks grows.

MT-AdamW adds each task's normalised gradient to the moments with weight ``(1 - beta) / s_k``.
With K tasks sampled equally (``s_k = 1/K``) the expected weight per step is ``K (1 - beta)``
where AdamW's is ``1 - beta``: the first moment is about K times an average gradient and the
second about K times an average square, so ``m / sqrt(n)``, the step, is about ``sqrt(K)`` times
AdamW's at the same learning rate.  This measures that on a synthetic problem instead of arguing
it: one shared parameter vector, K tasks whose gradients are a fixed direction of their own
(norms spread over two orders of magnitude) plus noise, the same sampled task sequence for every
optimiser, and the gradient independent of the parameters (so only the optimisers differ).  It
prints the root-mean-square step divided by the learning rate over the last third of the run, for
AdamW, AdamW on normalised gradients, and MT-AdamW, and the ratio MT-AdamW / AdamW.

    python benchmarks/mt_adamw_step_size.py [--tasks 1 2 3 4 5 6] [--steps 3000]
        [--out benchmarks/results/mt_adamw_step_size.json]

A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from up2core.optim import MTAdamW


def rms_step(optimizer_name: str, task_sequence: list[int], directions: torch.Tensor,
             scales: torch.Tensor, noise: float, lr: float, seed: int) -> float:
    """The RMS of ``(theta_t - theta_{t-1}) / lr`` over the last third of the steps."""
    num_tasks, size = directions.shape
    theta = torch.nn.Parameter(torch.zeros(size, dtype=torch.float64))
    if optimizer_name == 'MT-AdamW':
        optimizer = MTAdamW([theta], lr=lr, weight_decay=0.0)
    else:
        optimizer = torch.optim.AdamW([theta], lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    squares, counted = 0.0, 0
    for step, task in enumerate(task_sequence):
        grad = directions[task] + noise * torch.randn(size, generator=generator,
                                                      dtype=torch.float64) / size ** 0.5
        grad = grad * scales[task]
        if optimizer_name == 'AdamW, normalised gradients':
            grad = grad / grad.norm()
        theta.grad = grad
        if optimizer_name == 'MT-AdamW':
            optimizer.set_task(str(task), sampling_ratio=1.0 / num_tasks)
        before = theta.detach().clone()
        optimizer.step()
        if step >= 2 * len(task_sequence) // 3:
            squares += float(((theta.detach() - before) / lr).pow(2).mean())
            counted += 1
    return (squares / counted) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', type=int, nargs='+', default=[1, 2, 3, 4, 5, 6])
    parser.add_argument('--steps', type=int, default=3000)
    parser.add_argument('--size', type=int, default=4096, help='parameters in the shared vector')
    parser.add_argument('--noise', type=float, default=1.0,
                        help='noise norm relative to each task direction')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--out', default='benchmarks/results/mt_adamw_step_size.json')
    args = parser.parse_args()
    torch.set_num_threads(1)
    optimizers = ('AdamW', 'AdamW, normalised gradients', 'MT-AdamW')
    rows = []
    for num_tasks in args.tasks:
        per_seed = {name: [] for name in optimizers}
        for seed in args.seeds:
            generator = torch.Generator().manual_seed(seed)
            directions = torch.randn(num_tasks, args.size, generator=generator,
                                     dtype=torch.float64) / args.size ** 0.5
            scales = 10 ** (2 * torch.rand(num_tasks, generator=generator,
                                           dtype=torch.float64) - 1)
            sequence = torch.randint(num_tasks, (args.steps,), generator=generator).tolist()
            for name in optimizers:
                per_seed[name].append(rms_step(name, sequence, directions, scales, args.noise,
                                               lr=1e-3, seed=seed))
        row = {'tasks': num_tasks,
               'rms_step_over_lr': {name: per_seed[name] for name in optimizers},
               'ratio_mt_vs_adamw': [mt / ad for mt, ad in zip(per_seed['MT-AdamW'],
                                                                 per_seed['AdamW'])],
               'sqrt_tasks': num_tasks ** 0.5}
        rows.append(row)
        ratios = row['ratio_mt_vs_adamw']
        print(f"K={num_tasks}: " + ', '.join(
            f'{name} {sum(v) / len(v):.3f}' for name, v in row['rms_step_over_lr'].items())
            + f'; MT-AdamW / AdamW {min(ratios):.2f}-{max(ratios):.2f} '
            f'(sqrt(K) = {num_tasks ** 0.5:.2f})', flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'steps': args.steps, 'size': args.size, 'noise': args.noise,
                               'seeds': args.seeds, 'rows': rows}, indent=2) + '\n')


if __name__ == '__main__':
    main()
