"""Worker of ``test_mt_adamw_sharded.py`` (run under torchrun with 2 CPU processes, gloo).

Trains one small model twice for a few unmixed steps of two tasks: sharded over the ranks with
FSDP2 (``fully_shard``), each rank on its half of every batch, and unsharded in every process on
the whole batch.  Writes, per rank, the largest difference between the two models' parameters
and the local shape of a moment buffer (sharded: half the rows) to ``<out>/rank<r>.json``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard

from up2core.optim.mt_adamw import MTAdamW


def main(out: str) -> None:
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 6))
    sharded = copy.deepcopy(reference)
    initial = [p.detach().clone() for p in reference.parameters()]
    for layer in sharded:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(sharded)
    options = dict(lr=1e-2, weight_decay=0.05, normalize_coefficients=True)
    opt, opt_ref = MTAdamW(sharded.parameters(), **options), \
        MTAdamW(reference.parameters(), **options)
    heads = {'a': slice(0, 3), 'b': slice(3, 6)}  # each task trains its own outputs
    ratios = {'a': 0.75, 'b': 0.25}
    per_rank = 4
    for step, task in enumerate('aabab'):
        x = torch.randn(per_rank * world, 8, generator=torch.Generator().manual_seed(step))
        y = torch.randn(per_rank * world, 3, generator=torch.Generator().manual_seed(100 + step))
        for optimizer in (opt, opt_ref):
            optimizer.set_task(task, ratios[task], 1.0, num_tasks=2)
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        # FSDP averages the ranks' gradients, so each rank's mean loss matches the full batch's
        ((sharded(x[mine])[:, heads[task]] - y[mine]) ** 2).mean().backward()
        ((reference(x)[:, heads[task]] - y) ** 2).mean().backward()
        for optimizer in (opt, opt_ref):
            optimizer.step()
            optimizer.zero_grad()
    diff = max((p.full_tensor() - q).abs().max().item()
               for p, q in zip(sharded.parameters(), reference.parameters()))
    moved = max((q - p0).abs().max().item() for q, p0 in zip(reference.parameters(), initial))
    first = next(iter(sharded.parameters()))
    Path(out, f'rank{rank}.json').write_text(json.dumps({
        'max_diff': diff, 'moved': moved,
        'param_type': type(first).__name__,
        'exp_avg_local_shape': list(opt.state[first]['exp_avg'].to_local().shape),
        'full_shape': list(first.shape)}))
    # both ranks leave together: a rank tearing gloo down while its peer still holds the
    # connection aborted once in CI ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()
    # and skip the interpreter's teardown: gloo's threads still being destroyed there aborted
    # rank 0 again after the barrier (CI, 2026-12-07), with the results already written
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    main(sys.argv[1])
