"""``up2 train``: train a model from a config (MMEngine's Runner), then print the targets table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from up2core.cli._common import (
    DEFAULT_DISTILL,
    DEFAULT_DISTILL_EVERY,
    DEFAULT_DISTILL_IMAGE,
    DEFAULT_REPLAY,
    MAIN_JOB_CONFIG,
    _build_runner,
    _prepare_config,
    distillation_hook,
    runner_args,
)
from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('train', help='train a model from a config')
    runner_args(p, default_config=MAIN_JOB_CONFIG)
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                   help='resume from CKPT, or without a value from the last checkpoint in the '
                   'work dir')
    p.add_argument('--amp', action='store_true', help='mixed-precision training (CUDA only)')
    p.add_argument('--load-from', metavar='CKPT', help='start from the weights of CKPT '
                   '(finetuning; a new run, unlike --resume) and print what loaded')
    p.add_argument('--skip-bad-records', action='store_true',
                   help='with --data: train without the records `up2 data check` finds faulty '
                   '(from copies; your files are unchanged) instead of refusing')
    p.add_argument('--skip-data-check', action='store_true',
                   help='with --data: do not check the data before training')
    p.add_argument('--replay', type=float, metavar='WEIGHT',
                   help="with --data: keep training every task of the config on the config's "
                   'own data (tasks replay_<task>, evaluated too) on WEIGHT : 1 of the steps '
                   'instead of yours, so the model keeps what the checkpoint knew (default '
                   f'with --load-from: {DEFAULT_REPLAY:g})')
    p.add_argument('--plain-finetune', action='store_true',
                   help='with --data and --load-from: train on your data alone (no replay): '
                   'faster to learn it, and forgets what the checkpoint knew')
    p.add_argument('--keep-names', action='store_true',
                   help="with --data: each task also scores the config's own training names "
                   "in training, after yours, so your objects are learnt as none of them "
                   '(Task.kept_names_options; evaluation scores your names)')
    p.add_argument('--anchor', type=float, metavar='STRENGTH',
                   help='pull the weights back towards the checkpoint after every step '
                   '(share of the distance per step at the peak learning rate, e.g. 0.05; '
                   'AnchorHook): a finetune stays close to what it knew')
    p.add_argument('--distill', type=float, metavar='WEIGHT',
                   help="add to each task's loss WEIGHT x how far the shared decoder's outputs "
                   'moved from those of the checkpoint (a frozen copy run on the same batch; '
                   'DistillationHook): a finetune keeps what it knew, at one extra forward pass '
                   f'per step (default with --data and --load-from: {DEFAULT_DISTILL:g}; 0: off)')
    p.add_argument('--distill-tasks', nargs='+', metavar='PATTERN',
                   help="distil only the tasks these shell patterns name, e.g. 'replay_*' (the "
                   "base's replayed tasks: the teacher then runs on their steps alone)")
    p.add_argument('--distill-image', action=argparse.BooleanOptionalAction, default=None,
                   help="also keep the image encoder's feature maps where the checkpoint had "
                   "them (the neck and the region proposals' encoder; default: "
                   f"{'on' if DEFAULT_DISTILL_IMAGE else 'off'})")
    p.add_argument('--distill-every', type=int, metavar='K',
                   help='distil on one training step in K (the teacher runs that much less; '
                   f'default: {DEFAULT_DISTILL_EVERY})')
    p.add_argument('--vis', nargs='+', metavar='TRACKER',
                   help='also log to these experiment trackers: tensorboard, mlflow, wandb '
                   "(offline: files in the work dir; pip install 'up2[track]'; "
                   'MLFLOW_TRACKING_URI / WANDB_MODE=online for a server)')
    p.add_argument('--freeze', nargs='+', metavar='MODULE',
                   help='submodules to keep fixed, by dotted path, e.g. image_encoder.backbone '
                   'text_encoder (model.freeze)')
    p.add_argument('--tune', nargs='+', metavar='PATTERN',
                   help='selective tuning: train only the parameters matching these shell '
                   "patterns, e.g. 'decoder.layers.*.qkv.*' 'decoder.layers.*.proj.*' (the "
                   'shared decoder\'s attention projections); every other one stays the '
                   "checkpoint's (model.tune)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _prepare_config(args)
    if args.amp:
        import torch

        if not torch.cuda.is_available():
            raise UserError('--amp needs a CUDA device (MMEngine\'s AmpOptimWrapper does not run '
                            'on the CPU); drop --amp to train in fp32.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        from up2core.engine.checkpoint import latest_valid_checkpoint

        found, skipped = latest_valid_checkpoint(cfg.work_dir)
        fallback = f'resuming from {found} instead' if found is not None else \
            f'no valid checkpoint in {cfg.work_dir}: training starts from the beginning'
        for reason in skipped:  # one line each: what is wrong, and what is used instead
            print(f'up2: warning: {reason}; {fallback}', file=sys.stderr)
        cfg.resume = found is not None
        cfg.load_from = None if found is None else str(found)
        if found is None and not skipped:
            print(f'up2: {fallback}', file=sys.stderr)
    elif args.resume is not None:
        from up2core.engine.checkpoint import verify_checkpoint

        verify_checkpoint(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    if args.load_from is not None:
        if args.resume is not None:
            raise UserError('--load-from starts a new run from the weights of a checkpoint; '
                            '--resume continues a run: give one of them')
        from up2core.engine.checkpoint import verify_checkpoint

        verify_checkpoint(args.load_from, check_finite=True)
        cfg.load_from, cfg.resume = args.load_from, False
    if args.anchor is not None:
        if not 0.0 <= args.anchor <= 1.0:
            raise UserError(f'--anchor {args.anchor:g}: give a share in [0, 1] (0: off)')
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='AnchorHook', strength=args.anchor)]
    hook = distillation_hook(args)
    if hook is not None:
        if args.distill is None:
            from up2core.config import note

            note(f"finetune: distilling from the checkpoint (--distill {hook['weight']:g} on one "
                 f"step in {hook['every']}: each task also learns to keep the shared decoder's "
                 f"outputs{' and the image maps' if hook['image'] else ''} where the checkpoint "
                 "had them; --distill 0 turns it off, "
                 '--plain-finetune all of the defaults)')
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [hook]
    if cfg.get('up2_data') is not None and not args.skip_data_check:
        _check_training_data(cfg, args)
    runner = _build_runner(cfg)
    if args.load_from is not None:
        from up2core.engine.checkpoint import load_report

        report = load_report(runner.model, args.load_from)
        print(f'up2: load report of {args.load_from}: {report.summary()}', file=sys.stderr,
              flush=True)
        (Path(cfg.work_dir) / 'load_report.json').parent.mkdir(parents=True, exist_ok=True)
        (Path(cfg.work_dir) / 'load_report.json').write_text(
            json.dumps(report.as_dict(), indent=2) + '\n')
    runner.train()
    _print_final_metrics(Path(cfg.work_dir) / 'metrics.json', runner.iter, cfg.get('targets'))
    _print_files(runner)
    return 0


def _print_files(runner) -> None:
    """Where a run's results are: its last checkpoint, metrics and log file."""
    work_dir = Path(runner.work_dir)
    lines = []
    last = work_dir / 'last_checkpoint'
    if last.is_file():
        lines.append(f'checkpoint  {last.read_text().strip()}')
    if (work_dir / 'metrics.json').is_file():
        lines.append(f"metrics     {work_dir / 'metrics.json'}")
    log = getattr(runner.logger, 'log_file', None)
    if log:
        lines.append(f'log         {log}')
    if lines:
        print('\nFiles:\n' + '\n'.join(f'  {line}' for line in lines), flush=True)


def _print_final_metrics(path: Path, iteration: int, targets: dict | None) -> None:
    """The last validation as one table, against the config's ``targets`` when it has them."""
    from up2core.engine.base_checkpoint import print_forgetting
    from up2core.evaluation.targets import metrics_table

    if not path.is_file():
        return
    metrics = json.loads(path.read_text())
    if metrics.get('iter') != iteration:  # no validation in this run: an older file
        return
    print(f'\nValidation after {iteration} iterations ({path}):', flush=True)
    # the base's values and the shares kept are the forgetting report's, printed below it
    shown = {k: v for k, v in metrics.items() if not k.startswith(('base/', 'kept/'))}
    print(metrics_table(shown, targets), flush=True)
    print_forgetting(metrics)


def _check_training_data(cfg, args: argparse.Namespace) -> None:
    """The record-level checks of ``up2 data check`` on the data a run is about to train on:
    a fault refuses the run with the check's summary, unless ``--skip-bad-records`` drops the
    faulty records (from copies: the user's files are never changed)."""
    from up2core.data.check import check_data, skip_bad_records
    from up2core.data.dataset_file import config_capacity, load_data_file

    data = load_data_file(args.data)
    report = check_data(data, images=True, text_limit=None, capacity=config_capacity(cfg))
    for kind, found in report.warnings.items():  # what is repaired or capped: said, not hidden
        print(f'up2: warning: {args.data}: {len(found)} x {kind} (`up2 data check '
              f'{args.data}` lists them)', file=sys.stderr)
    if not report.errors:
        return
    if not args.skip_bad_records:
        raise UserError(f'{args.data} has faults that training would trip on: '
                        f'{report.one_line()}; run `up2 data check {args.data}` for the list, '
                        f'fix them, or add --skip-bad-records to train without those records')
    dropped = skip_bad_records(cfg, report, Path(cfg.work_dir) / 'data')
    print(f'up2: --skip-bad-records: training without {dropped} (cleaned copies in '
          f"{Path(cfg.work_dir) / 'data'}; your files are unchanged)", file=sys.stderr)
