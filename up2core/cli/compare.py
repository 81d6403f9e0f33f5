"""``up2 compare``: runs side by side (curves per task, a table of best and final values)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('compare', help='put runs side by side: per-task curves (compare.png) '
                       'and a table of each headline metric, best and final (compare.md, .csv)')
    p.add_argument('runs', nargs='+', metavar='RUN_DIR',
                   help="work dirs of runs (what up2 train --work-dir named)")
    p.add_argument('--out', required=True, metavar='DIR', help='where the files go')
    p.add_argument('--labels', nargs='+', metavar='LABEL',
                   help="the runs' names in the legend and table (default: their folders)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from up2core.engine.comparison import compare_runs

    written = compare_runs(args.runs, args.out, args.labels)
    print(written['md'].read_text(), end='')
    print(f"up2: compare: {written['png']}, {written['md']}, {written['csv']}")
    return 0
