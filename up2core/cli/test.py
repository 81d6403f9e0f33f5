"""``up2 test``: evaluate a checkpoint on a config's test sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from up2core.cli._common import _build_runner, _prepare_config, loading_args, runner_args
from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('test', help='evaluate a checkpoint on the config\'s test sets')
    runner_args(p)
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('--out-metrics', metavar='PATH', help='write the metrics as flat JSON')
    loading_args(p, None)
    p.set_defaults(func=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    from up2core.engine.checkpoint import check_fits, verify_checkpoint

    verify_checkpoint(args.checkpoint, check_finite=True)  # a diverged model scores nothing
    cfg = _prepare_config(args)
    cfg.load_from = args.checkpoint
    _set_report_dirs(cfg, Path(cfg.work_dir))
    runner = _build_runner(cfg)
    report = check_fits(runner.model, args.checkpoint, partial=args.partial_load)
    if report.untrained_tasks and not args.partial_load:
        trained = [t for t in runner.model.tasks if t not in report.untrained_tasks]
        raise UserError(f"checkpoint '{args.checkpoint}' was trained without task(s) "
                        f"{', '.join(report.untrained_tasks)}, so it cannot be scored on them; "
                        f"test the tasks it trained: --tasks {','.join(trained)}")
    if not report.exact or report.untrained_tasks:
        print(f'up2: warning: --partial-load: {report.summary()}', file=sys.stderr)
    metrics = runner.test()
    flat = {k: (v.item() if hasattr(v, 'item') else v) for k, v in (metrics or {}).items()}
    print(json.dumps(flat, indent=2, sort_keys=True))
    _write_test_summary(Path(cfg.work_dir), flat, args)
    if args.out_metrics:
        out = Path(args.out_metrics)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(flat, indent=2, sort_keys=True) + '\n')
    return 0


def _set_report_dirs(cfg, work_dir: Path) -> None:
    """Metrics that write per-class reports (``report_dir``) write them under the work dir."""
    from up2core.registry import METRICS

    for key in ('test_evaluator',):
        evaluators = cfg.get(key)
        if not isinstance(evaluators, dict) or 'type' in evaluators:
            continue
        for task, metric in evaluators.items():
            kind = METRICS.get(metric.get('type')) if isinstance(metric, dict) else None
            if kind is not None and getattr(kind, 'writes_reports', False):
                metric['report_dir'] = str(work_dir / 'reports' / task)


def _write_test_summary(work_dir: Path, flat: dict, args: argparse.Namespace) -> None:
    """``<work_dir>/test_summary.json``: the metrics by task, with the checkpoint and data."""
    summary: dict = {'checkpoint': str(args.checkpoint), 'data': args.data, 'tasks': {}}
    for key, value in flat.items():
        if isinstance(value, float) and value != value:
            value = None  # NaN (undefined, e.g. AP of an absent size range): null in JSON
        task, _, metric = key.partition('/')
        summary['tasks'].setdefault(task, {})[metric or task] = value
    reports = work_dir / 'reports'
    if reports.is_dir():
        summary['reports'] = sorted(str(p) for p in reports.rglob('*') if p.is_file())
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'test_summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(f"up2: per-task summary: {work_dir / 'test_summary.json'}"
          + (f'; per-class reports under {reports}' if reports.is_dir() else ''),
          file=sys.stderr)
