"""Make the pictures of ``docs/watching.md`` from real runs, and time what watching costs.

    python scripts/watching_pictures.py [--steps 260] [--every 130] [--seeds 0 1 2]

Trains the main job (``up2_tiny_shapes_generalist``, its 260 steps by default) with a
validation every ``--every`` steps, once per seed; finetunes the first seed's checkpoint on
``up2 data example``'s data as the own-data guide does (``--finetune-steps``, a validation
halfway; 0: none) and compares it with its base; with ``--vis tensorboard`` (so the trackers'
path runs too); then ``up2 compare`` of the seeds.  Copies into ``docs/watching/``: the first
seed's ``results.png``, one drawing of its last validation's predictions, and the comparison's
``compare.png``, and the finetune's against its base (``finetune_compare.png``); their tables
go to ``benchmarks/results/watching_seeds.md`` and ``watching_finetune.md``, from which
``scripts/docs_tables.py`` writes them into the page.  Prints, and saves in ``benchmarks/results/watching.json``,
what the run folder's files cost per validation (``results.csv`` + ``results.png``: timed
around the hook's own functions on the run's own rows; the predictions: the steps of
``PredictionsHook`` on the run's last checkpoint) next to one validation of that checkpoint (``up2 test``), as a
ratio.  Run it from the repository root (the config finds
its Shapes images under ``data/``); CPU model and idleness are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs' / 'watching'
RESULTS = ROOT / 'benchmarks' / 'results' / 'watching.json'
CONFIG = 'up2_tiny_shapes_generalist'


def _cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def train(work: Path, seed: int, steps: int, every: int) -> None:
    if (work / 'results.csv').is_file() and (work / f'iter_{steps}.pth').is_file():
        return
    command = [sys.executable, '-m', 'up2core.cli', 'train', CONFIG, '--work-dir', str(work),
               '--vis', 'tensorboard', '--cfg-options', f'max_iters={steps}',
               f'train_cfg.val_interval={every}', f'randomness.seed={seed}',
               f'default_hooks.checkpoint.interval={steps}']
    subprocess.run(command, cwd=ROOT, check=True)


def finetune(base: Path, work: Path, steps: int) -> None:
    """The own-data guide's finetune of ``base``'s last checkpoint on ``up2 data example``."""
    if (work / 'results.csv').is_file() and (work / f'iter_{steps}.pth').is_file():
        return
    data = work.parent / 'mydata'
    if not (data / 'data.yaml').is_file():
        subprocess.run([sys.executable, '-m', 'up2core.cli', 'data', 'example', '--out',
                        str(data)], cwd=ROOT, check=True)
    command = [sys.executable, '-m', 'up2core.cli', 'train', CONFIG, '--data',
               str(data / 'data.yaml'), '--load-from', str(next(base.glob('iter_*.pth'))),
               '--work-dir', str(work), '--cfg-options', f'max_iters={steps}',
               f'train_cfg.val_interval={steps // 2}', f'default_hooks.checkpoint.interval={steps}']
    subprocess.run(command, cwd=ROOT, check=True)


def files_cost(work: Path, steps: int) -> dict:
    """Seconds to write results.csv and draw results.png from the run's own rows, and to
    answer and draw the predictions on its last checkpoint."""
    from up2core.apis import init_model
    from up2core.apis.inference import iter_inference, runnable_tasks
    from up2core.apis.visualization import draw_results
    from up2core.engine.results import draw_results as draw_curves
    from up2core.engine.results import read_table, write_table

    rows = read_table(work / 'results.csv')
    lines = (work / 'steps.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    start = time.perf_counter()
    write_table(rows, work / '.cost.csv')
    draw_curves(rows, records, work / '.cost.png')
    table_s = time.perf_counter() - start
    model = init_model(CONFIG, str(work / f'iter_{steps}.pth'))
    folder = ROOT / 'data' / 'shapes' / 'images' / 'val'
    images = sorted(str(p) for p in folder.glob('*.png'))[:4]
    tasks = runnable_tasks(model, list(model.tasks), {})
    start = time.perf_counter()
    for index, (_, array, samples) in enumerate(
            iter_inference(model, images, tasks, batch_size=len(images))):
        draw_results(model, array, samples, str(work / f'.cost_{index}.jpg'))
    predictions_s = time.perf_counter() - start
    for leftover in work.glob('.cost*'):
        leftover.unlink()
    # the reference: one validation of the same checkpoint (`up2 test` of the val sets)
    start = time.perf_counter()
    subprocess.run([sys.executable, '-m', 'up2core.cli', 'test', CONFIG,
                    str(work / f'iter_{steps}.pth'), '--work-dir', str(work / 'reference_test')],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    validation_s = time.perf_counter() - start
    return {'results_files_s': round(table_s, 2), 'predictions_s': round(predictions_s, 2),
            'validation_s': round(validation_s, 1), 'rows': len(rows), 'steps': len(records)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=260)
    parser.add_argument('--every', type=int, default=130)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--finetune-steps', type=int, default=120)
    parser.add_argument('--work', default=str(ROOT / 'work_dirs' / 'watching'))
    parser.add_argument('--idle', default='yes', help='was the machine idle (kept in the JSON)')
    args = parser.parse_args(argv)
    works = [Path(args.work) / f'seed{seed}' for seed in args.seeds]
    for seed, work in zip(args.seeds, works):
        train(work, seed, args.steps, args.every)
    compared = Path(args.work) / 'compare'
    subprocess.run([sys.executable, '-m', 'up2core.cli', 'compare', *map(str, works), '--out',
                    str(compared)], cwd=ROOT, check=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copy(works[0] / 'results.png', DOCS / 'results.png')
    last = sorted((works[0] / 'predictions').glob('step_*'))[-1]
    shutil.copy(sorted(last.glob('*.jpg'))[0], DOCS / 'predictions.jpg')
    shutil.copy(compared / 'compare.png', DOCS / 'compare.png')
    # (the tables go where docs_tables.py reads them: a .md under docs/ would be a page)
    shutil.copy(compared / 'compare.md', RESULTS.with_name('watching_seeds.md'))
    if args.finetune_steps:
        tuned = Path(args.work) / 'finetune'
        finetune(works[0], tuned, args.finetune_steps)
        against = Path(args.work) / 'finetune_compare'
        subprocess.run([sys.executable, '-m', 'up2core.cli', 'compare', str(works[0]),
                        str(tuned), '--labels', 'base', 'finetune', '--out', str(against)],
                       cwd=ROOT, check=True)
        shutil.copy(against / 'compare.png', DOCS / 'finetune_compare.png')
        shutil.copy(against / 'compare.md', RESULTS.with_name('watching_finetune.md'))
    cost = files_cost(works[0], args.steps)
    from up2core.engine.results import read_table

    rows = read_table(works[0] / 'results.csv')
    record = {'machine': f'{platform.machine()}, {os.cpu_count()} cpus, {_cpu_name()}',
              'idle': args.idle, 'config': CONFIG, 'steps': args.steps, 'every': args.every,
              **cost, 'run_s': rows[-1]['time'],
              'per_validation_s': round(cost['results_files_s'] + cost['predictions_s'], 2)}
    record['x_validation'] = round(record['per_validation_s'] / cost['validation_s'], 3)
    RESULTS.write_text(json.dumps(record, indent=1) + '\n')
    print(json.dumps(record, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
