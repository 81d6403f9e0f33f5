"""``up2 data``: check, picture, browse your own data; generate Shapes and the own-data example."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from up2core.cli._common import EXIT_USAGE
from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('data', help='check, picture and browse your own data; generate '
                       'datasets', description=DATA_HELP.format(example=_data_example()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data_sub = p.add_subparsers(dest='dataset', required=True, metavar='COMMAND')
    s = data_sub.add_parser('check', help="check every record and image header of a dataset "
                            'file (errors exit 2)')
    s.add_argument('data', metavar='DATA.yaml')
    s.add_argument('--json', metavar='REPORT', help='also write every finding as JSON')
    s.add_argument('--no-images', action='store_true', help='check the annotation files only')
    s.add_argument('--hash', action='store_true', help='also find images that are in train '
                   'and val (reads whole files)')
    s.add_argument('--config', default='up2_tiny_shapes_generalist', help='the config that '
                   'will train on the data: its text encoder limits caption and name lengths, '
                   'its proposals and image size what images can hold (default: the main '
                   "job's)")
    s.set_defaults(func=cmd_data_check)
    s = data_sub.add_parser('stats', help='a picture of the data: instances per class and '
                            'split, box sizes and aspects, caption lengths')
    s.add_argument('data', metavar='DATA.yaml')
    s.add_argument('--out', required=True, help='the picture to write (.png; its numbers go '
                   'to OUT.json)')
    s.set_defaults(func=cmd_data_stats)
    s = data_sub.add_parser('browse', help='samples after the training pipeline, with boxes, '
                            'masks, names and captions drawn')
    s.add_argument('data', metavar='DATA.yaml')
    s.add_argument('--out', required=True, help='folder for the pictures')
    s.add_argument('--config', default='up2_tiny_shapes_generalist',
                   help="whose training pipelines to apply (default: the main job's)")
    s.add_argument('--split', default='train', choices=['train', 'val'])
    s.add_argument('--num', type=int, default=8, help='samples per task')
    s.set_defaults(func=cmd_data_browse)
    s = data_sub.add_parser('example', help="an example of your own data: Shapes re-exported "
                            'in the layouts users have, under new names, with its data.yaml')
    s.add_argument('--out', required=True, help='output folder')
    s.add_argument('--num-train', type=int, default=200)
    s.add_argument('--num-val', type=int, default=50)
    s.add_argument('--overwrite', action='store_true', help='replace an existing folder')
    s.set_defaults(func=cmd_data_example)
    s = data_sub.add_parser('shapes', help='the embedded Shapes dataset (deterministic)')
    s.add_argument('--out', required=True, help='output folder')
    s.add_argument('--num-train', type=int, default=2000)
    s.add_argument('--num-val', type=int, default=300)
    s.add_argument('--image-size', type=int, default=128)
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--overwrite', action='store_true', help='replace an existing dataset')
    s.set_defaults(func=cmd_data_shapes)


DATA_HELP = """Your own data is declared in a dataset file, used as `up2 train CONFIG --data
DATA.yaml` (and by `up2 test`, `up2 infer`, `up2 data ...`).  Keys per task, any subset; paths
relative to `path` (default: the file's folder):

{example}

COCO instances json (any category ids, polygons or RLE); image-folder trees with an optional
classes.txt of readable names; captions as COCO json, JSON Lines or CSV rows of image and
caption.  `up2 data example --out DIR` writes a small dataset of this kind to try it on."""


def _data_example() -> str:
    from up2core.data.dataset_file import EXAMPLE

    return '\n'.join('  ' + line for line in EXAMPLE.splitlines())


def cmd_data_shapes(args: argparse.Namespace) -> int:
    from up2core.data.shapes import ShapesSpec, generate_shapes

    spec = ShapesSpec(num_train=args.num_train, num_val=args.num_val,
                      image_size=args.image_size, seed=args.seed)
    summary = generate_shapes(args.out, spec, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from up2core.data.check import check_data, text_counter
    from up2core.data.dataset_file import load_data_file

    data = load_data_file(args.data)
    with contextlib.redirect_stdout(sys.stderr):
        limit, count = text_counter(args.config)
    capacity = None
    if args.config:
        from up2core.config import load_config
        from up2core.data.dataset_file import config_capacity

        capacity = config_capacity(load_config(args.config))
    report = check_data(data, images=not args.no_images, hash_images=args.hash,
                        text_limit=limit, count_tokens=count, capacity=capacity)
    for line in report.lines():
        print(line)
    errors = sum(len(v) for v in report.errors.values())
    warnings = sum(len(v) for v in report.warnings.values())
    print(f'{args.data}: {report.records} records and {report.images} images checked: '
          f'{errors} errors, {warnings} warnings')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2) + '\n')
    return EXIT_USAGE if errors else 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from up2core.data.dataset_file import load_data_file
    from up2core.data.pictures import data_stats, draw_stats

    data = load_data_file(args.data)
    stats = data_stats(data)
    out = Path(args.out)
    draw_stats(stats, out)
    out.with_suffix('.json').write_text(json.dumps(stats, indent=2) + '\n')
    print(f"stats of {args.data}: {out} (numbers: {out.with_suffix('.json')})")
    return 0


def cmd_data_browse(args: argparse.Namespace) -> int:
    from up2core.data.pictures import browse

    if args.num < 1:
        raise UserError(f'--num {args.num}: must be at least 1')
    with contextlib.redirect_stdout(sys.stderr):
        written = browse(args.data, args.config, args.out, split=args.split, num=args.num)
    print(f'{len(written)} pictures in {args.out}')
    return 0


def cmd_data_example(args: argparse.Namespace) -> int:
    from up2core.data.example import write_example_data

    path = write_example_data(args.out, args.num_train, args.num_val, overwrite=args.overwrite)
    print(f'example data in {args.out}; its dataset file: {path}')
    return 0
