"""``up2 export``: one task's inference graph, as ONNX or a ``torch.export`` program."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from up2core.cli._common import loading_args
from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('export', help="export one task's inference graph (ONNX or a "
                       'torch.export program)')
    p.add_argument('config', help='config file, or the name of a packaged config')
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('--task', required=True, help='the task whose graph to export')
    p.add_argument('--format', default='onnx', help='onnx (default; run it with onnxruntime) '
                   'or exported-program (torch.export.save, a .pt2)')
    p.add_argument('--out', required=True, help='the file to write (and OUT.json describing '
                   'its input and outputs)')
    p.add_argument('--classes', help='comma-separated names baked into the graph '
                   "(classification, detection, segmentation; default: the config's)")
    p.add_argument('--texts', nargs='+', help='candidate texts baked into the graph (retrieval)')
    p.add_argument('--image-size', nargs=2, type=int, default=[128, 128], metavar=('H', 'W'),
                   help='input height and width, fixed in the graph (default: 128 128)')
    p.add_argument('--max-batch', type=int, default=64, help='largest batch the graph takes')
    p.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', default=[])
    loading_args(p, "your own data's dataset file: its names")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from up2core.apis.inference import init_model
    from up2core.export import FORMATS, export_task

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f'{out} exists: add --overwrite to replace it')
    options: dict = {}
    if args.classes is not None:
        options['classes'] = [c.strip() for c in args.classes.split(',') if c.strip()]
        if not options['classes']:
            raise UserError(f'--classes {args.classes!r} names no category; give '
                            f'comma-separated names, e.g. --classes "red star,blue circle"')
    if args.texts:
        options['texts'] = args.texts
    if args.format not in FORMATS:
        raise UserError(f"--format {args.format}: use one of {', '.join(FORMATS)}")
    with contextlib.redirect_stdout(sys.stderr):
        model = init_model(args.config, args.checkpoint, cfg_options=args.cfg_options,
                           data=args.data, partial=args.partial_load)
    if args.task not in model.tasks:
        raise UserError(f"--task {args.task}: the model has no such task; it has "
                        f"{', '.join(model.tasks)}")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            info = export_task(model, args.task, out, format=args.format,
                               image_size=tuple(args.image_size), max_batch=args.max_batch,
                               **options)
    except NotImplementedError as exc:
        raise UserError(f'--task {args.task}: {exc}') from None
    size = out.stat().st_size / 2**20
    print(f"{out}  ({info['format']}, {size:.1f} MiB, {info['export_seconds']} s)")
    print(f"  input   images float32 [batch<={args.max_batch}, 3, {args.image_size[0]}, "
          f"{args.image_size[1]}] RGB 0-255")
    print(f"  outputs {', '.join(info['outputs'])}")
    print(f'  described in {out}.json')
    return 0
