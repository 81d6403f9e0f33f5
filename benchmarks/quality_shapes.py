"""Quality runs on Shapes: train tiny configs from the CLI, time them, and record their metrics.

    python benchmarks/quality_shapes.py [--runs classification retrieval joint_adamw joint_mtadamw]
        [--out benchmarks/results/quality_shapes.json]

Runs (each in a fresh work dir under work_dirs/quality/, with its packaged schedule):

* ``classification``, ``retrieval``: each task alone (issue #3's targets);
* ``joint_adamw``, ``joint_mtadamw``: both tasks jointly with unmixed sampling, optimised with
  plain AdamW or with MT-AdamW, everything else equal (issue #4's comparison);
* ``regions``: detection + instance segmentation jointly (issue #7's targets: box AP >= 0.50 and
  mask AP >= 0.40 within 15 minutes of training), AP on seen and held-out names;
* ``four_tasks``: classification, retrieval, detection and segmentation in one generalist;
  ``four_tasks_lr2e-4``: the same at the five-task run's learning rate;
* ``captioning``: captioning alone; ``five_tasks``: the four tasks plus captioning with MT-AdamW
  at lr 2e-4 (issue #8's target: CIDEr >= 100 on Shapes val); ``five_tasks_lr5e-4``: the same at
  the four-task run's lr 5e-4; ``five_tasks_adamw``: plain AdamW at lr 5e-4;
* ``generalist``: the main job (`make demo`'s training, issue #16's targets), every task on the
  same images each step; ``generalist_unmixed``: the same with the paper's unmixed sampling in
  about the same training time.

The wall time includes start-up and the final validation; ``train_s`` is the training alone (from
the log: first step to last step).  The numbers in the README come from
this script on a 2-core CPU.  This is a measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    'classification': ('up2_tiny_shapes_classification', []),
    'retrieval': ('up2_tiny_shapes_retrieval', []),
    'joint_adamw': ('up2_tiny_shapes', ['optim_wrapper.type=OptimWrapper',
                                        'optim_wrapper.optimizer.type=AdamW']),
    'joint_mtadamw': ('up2_tiny_shapes', ['optim_wrapper.type=MultiTaskOptimWrapper',
                                          'optim_wrapper.optimizer.type=MTAdamW']),
    'regions': ('up2_tiny_shapes_regions', []),
    'four_tasks': ('up2_tiny_shapes_four_tasks', []),
    'four_tasks_lr2e-4': ('up2_tiny_shapes_four_tasks', ['optim_wrapper.optimizer.lr=2e-4']),
    'captioning': ('up2_tiny_shapes_captioning', []),
    'five_tasks': ('up2_tiny_shapes_five_tasks', []),
    'five_tasks_lr5e-4': ('up2_tiny_shapes_five_tasks', ['optim_wrapper.optimizer.lr=5e-4']),
    'five_tasks_adamw': ('up2_tiny_shapes_five_tasks', ['optim_wrapper.type=OptimWrapper',
                                                        'optim_wrapper.optimizer.type=AdamW',
                                                        'optim_wrapper.optimizer.lr=5e-4']),
    'generalist': ('up2_tiny_shapes_generalist', []),
    # the same data, model and time budget with the paper's unmixed sampling (one task per
    # step, each image encoded for that task only), at the unmixed five-task run's lr
    'generalist_unmixed': ('up2_tiny_shapes_generalist', ['train_cfg.mode=unmixed',
                                                          'max_iters=400',
                                                          'optim_wrapper.optimizer.lr=2e-4']),
}
TARGETS = {  # (metric, at least, within seconds of training) that issues #3 and #7 ask for
    'classification': [('classification/top1', 90.0, 600)],
    'retrieval': [('retrieval/i2t_R@1', 50.0, 600)],
    'regions': [('detection/bbox_mAP', 0.50, 900), ('segmentation/segm_mAP', 0.40, 900)],
    'five_tasks': [('captioning/CIDEr', 100.0, None)],
    'five_tasks_lr5e-4': [('captioning/CIDEr', 100.0, None)],
    'five_tasks_adamw': [('captioning/CIDEr', 100.0, None)],
    # issue #16: the main job, all within 20 minutes (wall time checked by `make demo`)
    'generalist': [('classification/top1', 92.0, None), ('retrieval/i2t_R@1', 70.0, None),
                   ('retrieval/t2i_R@1', 60.0, None), ('detection/bbox_mAP', 0.70, None),
                   ('detection/bbox_mAP_novel', 0.60, None),
                   ('segmentation/segm_mAP', 0.45, None), ('captioning/CIDEr', 200.0, None)],
}


def training_seconds(work_dir: Path) -> float | None:
    """Seconds from the runner's start of training to its last logged training step."""
    logs = sorted(work_dir.glob('*/*.log'))
    if not logs:
        return None
    start = end = None
    for line in logs[-1].read_text().splitlines():
        stamp = re.match(r'\S+ (\d\d):(\d\d):(\d\d) ', line)
        if stamp is None:
            continue
        seconds = int(stamp[1]) * 3600 + int(stamp[2]) * 60 + int(stamp[3])
        if 'Checkpoints will be saved' in line and start is None:
            start = seconds
        elif 'Iter(train)' in line:
            end = seconds
    if start is None or end is None:
        return None
    return float((end - start) % 86400)


def run(name: str, work_root: Path, extra: list[str], reuse: bool = False) -> dict:
    config, options = RUNS[name]
    options = options + extra
    work_dir = work_root / name
    if reuse and (work_dir / 'metrics.json').is_file():
        # A finished run of the same command: recorded, not repeated (its wall time is not known;
        # the training time comes from its log).
        seconds = float('nan')
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
        up2 = str(Path(sys.executable).with_name('up2'))
        command = [up2, 'train', config, '--work-dir', str(work_dir)]
        if options:
            command += ['--cfg-options', *options]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f'{config} failed:\n{result.stderr[-3000:]}')
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    train_s = training_seconds(work_dir)
    row = {'run': name, 'config': config, 'options': options,
           'wall_s': None if seconds != seconds else round(seconds, 1),
           'train_s': train_s, 'metrics': metrics}
    if name in TARGETS:
        row['target'] = [
            {key: target, 'within_s': limit,
             'met': metrics[key] >= target and (limit is None or (train_s or seconds) <= limit)}
            for key, target, limit in TARGETS[name]]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', nargs='+', choices=list(RUNS), default=list(RUNS))
    parser.add_argument('--out', default='benchmarks/results/quality_shapes.json')
    parser.add_argument('--work-root', default='work_dirs/quality')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides for every run')
    parser.add_argument('--reuse', action='store_true',
                        help='record a run whose work dir already holds metrics.json instead of '
                        'training it again')
    args = parser.parse_args()
    out = Path(args.out)
    # Runs already in the file stay unless measured again (runs can be done a few at a time).
    rows = {row['run']: row for row in json.loads(out.read_text())} if out.is_file() else {}
    for name in args.runs:
        row = run(name, Path(args.work_root), args.cfg_options, reuse=args.reuse)
        rows[name] = row
        out.parent.mkdir(parents=True, exist_ok=True)  # saved after each run
        out.write_text(json.dumps([rows[n] for n in RUNS if n in rows], indent=2) + '\n')
        shown = {k: round(v, 2) for k, v in row['metrics'].items() if k != 'iter'}
        print(f"{name}: {row['wall_s']} s, iter {row['metrics']['iter']}, {shown}"
              + (f"  target {row['target']}" if 'target' in row else ''), flush=True)


#: the rows of the two-task table (docs/results.md) and their labels
TWO_TASK_RUNS = {'classification': 'classification alone', 'retrieval': 'retrieval alone',
                 'joint_adamw': 'joint, AdamW', 'joint_mtadamw': 'joint, MT-AdamW (default)'}


def table(rows: list[dict], runs: dict[str, str] = TWO_TASK_RUNS) -> str:
    """The Markdown table of ``runs`` (run -> label) from the saved rows."""
    def cell(metrics: dict, keys: tuple[str, ...]) -> str:
        values = [metrics.get(k) for k in keys]
        return ' / '.join(f'{v:.1f}' for v in values) if all(v is not None for v in values) \
            else '–'

    lines = ['| run | config | iterations | wall time | classification top-1 / top-5 | '
             'retrieval i2t R@1 / R@5 / R@10 | t2i R@1 / R@5 / R@10 |', '|---|---|---|---|---|---|---|']
    by_run = {r['run']: r for r in rows}
    for run, label in runs.items():
        r = by_run[run]
        config = f"`{r['config']}`" + ''.join(f' `{o}`' for o in r['options'])
        m = r['metrics']
        wall = f"{r['wall_s'] / 60:.1f} min" if r.get('wall_s') else '–'
        lines.append(f"| {label} | {config} | {m.get('iter', '–')} | {wall} | "
                     f"{cell(m, ('classification/top1', 'classification/top5'))} | "
                     f"{cell(m, tuple(f'retrieval/i2t_R@{k}' for k in (1, 5, 10)))} | "
                     f"{cell(m, tuple(f'retrieval/t2i_R@{k}' for k in (1, 5, 10)))} |")
    return '\n'.join(lines)


def metrics_table(rows: list[dict], runs: dict[str, str],
                  columns: list[tuple[str, str]]) -> str:
    """A table of ``runs`` (run -> label) whose cells are ``columns``' templates filled with the
    run's metrics: ``('box AP (seen / novel)', '{detection/bbox_mAP:.3f} (...)')``; a cell whose
    metrics the run does not have is '–'."""
    lines = ['| run | ' + ' | '.join(header for header, _ in columns) + ' |',
             '|---' * (len(columns) + 1) + '|']
    by_run = {r['run']: r for r in rows}
    for run, label in runs.items():
        metrics = by_run[run]['metrics']
        cells = []
        for _, template in columns:
            try:
                cells.append(template.format_map(_Metrics(metrics)))
            except KeyError:
                cells.append('–')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


class _Metrics(dict):
    """``str.format_map`` over metric names with slashes (``{detection/bbox_mAP:.3f}``)."""

    def __missing__(self, key):
        raise KeyError(key)


if __name__ == '__main__':
    main()
