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
AdamW, AdamW on normalised gradients, MT-AdamW and MT-AdamW with ``normalize_coefficients=True``,
and the ratios of both MT-AdamWs to AdamW.  Tasks are sampled equally (``s_k = 1/K``) and, as a
second case, skewed (``s_k`` proportional to ``1/k``: the first task drawn most).

    python benchmarks/mt_adamw_step_size.py [--tasks 1 2 3 4 5 6] [--steps 3000]
        [--sampling equal skewed] [--out benchmarks/results/mt_adamw_step_size.json]

A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from up2core.optim import MTAdamW

MT = ('MT-AdamW', 'MT-AdamW, normalised coefficients')


def rms_step(optimizer_name: str, task_sequence: list[int], directions: torch.Tensor,
             scales: torch.Tensor, noise: float, lr: float, seed: int,
             ratios: list[float]) -> float:
    """The RMS of ``(theta_t - theta_{t-1}) / lr`` over the last third of the steps."""
    num_tasks, size = directions.shape
    theta = torch.nn.Parameter(torch.zeros(size, dtype=torch.float64))
    if optimizer_name in MT:
        optimizer = MTAdamW([theta], lr=lr, weight_decay=0.0,
                            normalize_coefficients=optimizer_name != 'MT-AdamW')
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
        if optimizer_name in MT:
            optimizer.set_task(str(task), sampling_ratio=ratios[task], num_tasks=num_tasks)
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
    parser.add_argument('--sampling', nargs='+', default=['equal', 'skewed'],
                        choices=['equal', 'skewed'])
    parser.add_argument('--out', default='benchmarks/results/mt_adamw_step_size.json')
    args = parser.parse_args()
    torch.set_num_threads(1)
    optimizers = ('AdamW', 'AdamW, normalised gradients') + MT
    rows = []
    for sampling in args.sampling:
        for num_tasks in args.tasks:
            weights = [1.0] * num_tasks if sampling == 'equal' else \
                [1.0 / (k + 1) for k in range(num_tasks)]
            ratios = [w / sum(weights) for w in weights]
            per_seed = {name: [] for name in optimizers}
            for seed in args.seeds:
                generator = torch.Generator().manual_seed(seed)
                directions = torch.randn(num_tasks, args.size, generator=generator,
                                         dtype=torch.float64) / args.size ** 0.5
                scales = 10 ** (2 * torch.rand(num_tasks, generator=generator,
                                               dtype=torch.float64) - 1)
                sequence = torch.multinomial(torch.tensor(ratios), args.steps, replacement=True,
                                             generator=generator).tolist()
                for name in optimizers:
                    per_seed[name].append(rms_step(name, sequence, directions, scales,
                                                   args.noise, lr=1e-3, seed=seed, ratios=ratios))
            row = {'sampling': sampling, 'tasks': num_tasks, 'ratios': ratios,
                   'rms_step_over_lr': {name: per_seed[name] for name in optimizers},
                   'ratio_mt_vs_adamw': [mt / ad for mt, ad in zip(per_seed['MT-AdamW'],
                                                                     per_seed['AdamW'])],
                   'ratio_mt_normalised_vs_adamw': [
                       mt / ad for mt, ad in zip(per_seed[MT[1]], per_seed['AdamW'])],
                   'sqrt_tasks': num_tasks ** 0.5}
            rows.append(row)

            def spread(values):
                mean = sum(values) / len(values)
                std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
                return f'{mean:.2f} +- {std:.2f}'

            print(f"{sampling:6s} K={num_tasks}: MT-AdamW / AdamW "
                  f"{spread(row['ratio_mt_vs_adamw'])} (sqrt(K) = {num_tasks ** 0.5:.2f}); "
                  f"normalised coefficients / AdamW "
                  f"{spread(row['ratio_mt_normalised_vs_adamw'])}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'steps': args.steps, 'size': args.size, 'noise': args.noise,
                               'seeds': args.seeds, 'rows': rows}, indent=2) + '\n')


def table(record: dict) -> str:
    """The Markdown table of a saved run: the RMS step of MT-AdamW (the paper's, and with
    normalised coefficients) over AdamW's, per number of tasks K and sampling (docs/results.md)."""
    counts = sorted({row['tasks'] for row in record['rows']})

    def cell(values: list[float]) -> str:
        if len(values) < 2 or statistics.stdev(values) < 0.005:
            return f'{statistics.mean(values):.2f}'
        return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'

    lines = ['| K | ' + ' | '.join(map(str, counts)) + ' |', '|---|' + '---|' * len(counts)]
    for sampling in dict.fromkeys(row['sampling'] for row in record['rows']):
        for key, label in (('ratio_mt_vs_adamw', "paper's MT-AdamW"),
                           ('ratio_mt_normalised_vs_adamw', 'normalised')):
            by_k = {row['tasks']: row[key] for row in record['rows']
                    if row['sampling'] == sampling}
            lines.append(f'| {label}, {sampling} | '
                         + ' | '.join(cell(by_k[k]) for k in counts) + ' |')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
