"""``up2 merge``: interpolate a base checkpoint and one finetuned from it (no training)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('merge', help='interpolate the weights of a base checkpoint and one '
                       'finetuned from it: (1 - alpha) * base + alpha * finetuned')
    p.add_argument('base', help='the checkpoint finetuning started from (--load-from)')
    p.add_argument('finetuned', help='the finetuned checkpoint')
    p.add_argument('--alpha', type=float, required=True,
                   help="how much of the finetune to keep: 0 is the base, 1 the finetune; "
                   'lower keeps more of what the base knew')
    p.add_argument('--out', required=True, help='the checkpoint to write (.pth)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from up2core.engine.interpolation import merge_checkpoints

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f'{out} exists: add --overwrite to replace it')
    if not 0.0 <= args.alpha <= 1.0:
        raise UserError(f'--alpha {args.alpha:g}: give a value in [0, 1] (0: the base, '
                        f'1: the finetune)')
    merge_checkpoints(args.base, args.finetuned, args.alpha, out)
    print(f'up2: wrote {out}: {1 - args.alpha:g} x {args.base} + {args.alpha:g} x '
          f'{args.finetuned}', file=sys.stderr)
    return 0
