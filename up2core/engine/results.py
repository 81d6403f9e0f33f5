"""What a run leaves to read without code: ``results.csv`` and ``results.png`` in its work dir.

:class:`RunResultsHook` (in every config's default runtime) keeps, for a training run,

* ``steps.jsonl``: one line per training step: ``step``, learning rate ``lr``, what the step
  trained (``trained``: a task, or a group of tasks such as a finetune's ``replay``) and each of
  its loss terms (``<task>/loss``, ``<task>/loss_cls``...);
* ``results.csv``: one row per validation: ``step``, ``time`` (seconds of the run so far,
  validations included), ``lr``, each loss term averaged over the steps since the previous
  validation, then every metric, named by task (``detection/bbox_mAP``);
* ``results.png``: one panel per task on a shared step axis (its losses, and its headline
  metrics, :attr:`~up2core.task.Task.headline_metrics`, at each validation), and one panel with
  the learning rate and which task or group each step trained;

all rewritten at each validation (a resumed run goes on from where its files stop).  ``up2
test`` gets the counterparts ``test_results.csv`` (one row) and ``test_results.png`` (each
task's headline metrics).  Nothing here needs a network or a package beyond matplotlib.

Examples:
    >>> custom_hooks = [dict(type='RunResultsHook', draw=False)]   # the CSV files only
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

from mmengine.hooks import Hook

from up2core.registry import HOOKS

RESULTS_CSV = 'results.csv'
RESULTS_PNG = 'results.png'
STEPS_JSONL = 'steps.jsonl'
TEST_CSV = 'test_results.csv'
TEST_PNG = 'test_results.png'
#: metrics a panel shows for a task that names no headline metrics
DEFAULT_HEADLINES = 3
#: prefixes of metric keys that are about another run (a finetune's base), not drawn
NOT_DRAWN = ('base/',)


def _number(value) -> float | None:
    try:
        value = float(value.item() if hasattr(value, 'item') else value)
    except (TypeError, ValueError):
        return None
    return value


def _finite(value) -> bool:
    number = _number(value)
    return number is not None and math.isfinite(number)


def _is_loss(key: str) -> bool:
    return key.rsplit('/', 1)[-1].startswith('loss')


def _write_atomic(path: Path, text: str) -> None:
    staged = path.with_name(f'.{path.name}.partial')
    staged.write_text(text)
    os.replace(staged, path)  # a kill never leaves half a file


def write_table(rows: list[dict], path: str | Path) -> Path:
    """``rows`` as CSV, the columns in the order they first appear (empty where a row has
    none); returns the path."""
    import io

    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval='', lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(v) for k, v in row.items()})
    path = Path(path)
    _write_atomic(path, buffer.getvalue())
    return path


def _format(value):
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.6g}'
    return value


def read_table(path: str | Path) -> list[dict]:
    """The rows of a ``results.csv`` (numbers as floats, empty cells left out)."""
    rows = []
    with open(path, newline='') as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for key, value in row.items():
                if value == '':
                    continue
                number = _number(value)
                parsed[key] = number if number is not None else value
            rows.append(parsed)
    return rows


def task_of(key: str) -> str | None:
    """The task a ``task/name`` key belongs to (None for run-wide keys such as ``lr``);
    ``kept/<task>/<metric>`` (a finetune's share kept) belongs to ``replay_<task>``."""
    parts = key.split('/')
    if len(parts) < 2 or key.startswith(NOT_DRAWN):
        return None
    if parts[0] == 'kept' and len(parts) >= 3:
        return f'replay_{parts[1]}'
    return parts[0]


def headlines(task: str, keys: list[str], named: tuple[str, ...] = ()) -> list[str]:
    """The metric keys of ``task`` a panel shows: those ``named`` (a task's
    ``headline_metrics``) that ``keys`` holds, else its first :data:`DEFAULT_HEADLINES`."""
    own = [k for k in keys if task_of(k) == task and not _is_loss(k)]
    by_name = {k.split('/')[-1]: k for k in own if not k.startswith('kept/')}
    chosen = [by_name[name] for name in named if name in by_name]  # in the task's order
    chosen += [k for k in own if k.startswith('kept/')]
    return chosen if named and len(chosen) > 0 else own[:DEFAULT_HEADLINES]


#: a panel draws a task's total loss and at most this many of its terms (every term is in
#: results.csv and steps.jsonl): a region task has 20, which would bury the curve that matters
DRAWN_LOSS_TERMS = 3


def _drawn_losses(losses: list[str], records: list[dict]) -> list[str]:
    """The task's total loss (``<task>/loss``) first, then its largest terms at the last
    record; without a total, the largest terms."""
    total = [k for k in losses if k.split('/', 1)[1] == 'loss']
    last = records[-1] if records else {}
    terms = sorted((k for k in losses if k not in total),
                   key=lambda k: -(_number(last.get(k)) or 0.0))
    return total + terms[:DRAWN_LOSS_TERMS]


def draw_results(rows: list[dict], steps: list[dict], path: str | Path,
                 named: dict[str, tuple[str, ...]] | None = None, title: str = '') -> Path:
    """``results.png``: a panel per task (losses per step, faint, and their average between
    validations; headline metrics at each validation on the right axis), and the learning
    rate with what each step trained."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    named = named or {}
    keys: list[str] = []
    for record in steps + rows:
        keys += [k for k in record if k not in keys]
    tasks = []
    for key in keys:
        task = task_of(key)
        if task is not None and task not in tasks:
            tasks.append(task)
    columns = min(3, len(tasks) + 1)
    lines = math.ceil((len(tasks) + 1) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.3 * lines),
                                squeeze=False)
    flat = list(axes.flat)
    for ax, task in zip(flat, tasks):
        ax.set_title(task, fontsize=10)
        ax.set_xlabel('step', fontsize=8)
        losses = _drawn_losses([k for k in keys if task_of(k) == task and _is_loss(k)],
                               rows or steps)
        for index, key in enumerate(losses):
            colour = f'C{index % 10}'
            xs = [s['step'] for s in steps if _number(s.get(key)) is not None]
            ys = [_number(s[key]) for s in steps if _number(s.get(key)) is not None]
            if xs:
                ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
            vx = [r['step'] for r in rows if _number(r.get(key)) is not None]
            vy = [_number(r[key]) for r in rows if _number(r.get(key)) is not None]
            if vx:
                ax.plot(vx, vy, color=colour, linewidth=1.6, marker='.',
                        label=key.split('/', 1)[1])
        ax.set_ylabel('loss', fontsize=8)
        ax.tick_params(labelsize=7)
        metrics = [k for k in headlines(task, keys, named.get(task, ()))
                   if any(_finite(r.get(k)) for r in rows)]  # (an AP of no object: nan)
        if metrics:
            right = ax.twinx()
            for index, key in enumerate(metrics):
                vx = [r['step'] for r in rows if _finite(r.get(key))]
                vy = [_number(r[key]) for r in rows if _finite(r.get(key))]
                right.plot(vx, vy, color=f'C{(index + len(losses)) % 10}', linestyle='--',
                           marker='o', markersize=4, linewidth=1.4,
                           label=key.split('/', 1)[1] if not key.startswith('kept/')
                           else key)
            right.set_ylabel('metric (o, --)', fontsize=8)
            right.tick_params(labelsize=7)
            handles = ax.get_legend_handles_labels()
            more = right.get_legend_handles_labels()
            right.legend(handles[0] + more[0], handles[1] + more[1], fontsize=6,
                         loc='best', framealpha=0.6)
        elif losses:
            ax.legend(fontsize=6, loc='best', framealpha=0.6)
    ax = flat[len(tasks)]
    ax.set_title('learning rate, and what each step trained', fontsize=10)
    ax.set_xlabel('step', fontsize=8)
    xs = [s['step'] for s in steps if _number(s.get('lr')) is not None]
    ax.plot(xs, [_number(s['lr']) for s in steps if _number(s.get('lr')) is not None],
            color='k', linewidth=1.2)
    ax.set_ylabel('lr', fontsize=8)
    ax.tick_params(labelsize=7)
    trained = []
    for s in steps:
        if s.get('trained') not in trained and s.get('trained') is not None:
            trained.append(s['trained'])
    if trained:
        right = ax.twinx()
        for index, name in enumerate(trained):
            marks = [s['step'] for s in steps if s.get('trained') == name]
            right.scatter(marks, [index] * len(marks), s=6, marker='|',
                          color=f'C{index % 10}')
        right.set_yticks(range(len(trained)), trained, fontsize=7)
        right.set_ylim(-0.8, len(trained) - 0.2)
    for extra in flat[len(tasks) + 1:]:
        extra.axis('off')
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    path = Path(path)
    staged = path.with_name(f'.{path.stem}.partial{path.suffix}')
    figure.savefig(staged, dpi=90)
    plt.close(figure)
    os.replace(staged, path)
    return path


def draw_test_results(metrics: dict, path: str | Path,
                      named: dict[str, tuple[str, ...]] | None = None, title: str = '') -> Path:
    """``test_results.png``: a bar panel per task with its headline metrics."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    named = named or {}
    keys = [k for k, v in metrics.items() if _number(v) is not None]
    tasks = []
    for key in keys:
        task = task_of(key)
        if task is not None and task not in tasks:
            tasks.append(task)
    columns = max(1, min(3, len(tasks)))
    lines = max(1, math.ceil(len(tasks) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(4.6 * columns, 3.0 * lines),
                                squeeze=False)
    flat = list(axes.flat)
    for ax, task in zip(flat, tasks):
        chosen = [k for k in headlines(task, keys, named.get(task, ())) if _finite(metrics[k])]
        values = [_number(metrics[k]) for k in chosen]
        bars = ax.bar(range(len(chosen)), values, color=[f'C{i % 10}' for i in range(len(chosen))])
        ax.set_xticks(range(len(chosen)), [k.split('/', 1)[1] for k in chosen], fontsize=7,
                      rotation=20)
        for bar, value in zip(bars, values):
            ax.annotate(f'{value:.3g}', (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha='center', va='bottom', fontsize=7)
        ax.set_title(task, fontsize=10)
        ax.tick_params(labelsize=7)
    for extra in flat[len(tasks):]:
        extra.axis('off')
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _headline_names(runner) -> dict[str, tuple[str, ...]]:
    model = getattr(runner.model, 'module', runner.model)
    tasks = getattr(model, 'tasks', None) or {}
    return {name: tuple(getattr(task, 'headline_metrics', ()) or ()) for name, task in
            tasks.items()}


@HOOKS.register_module()
class RunResultsHook(Hook):
    """Write ``steps.jsonl``, ``results.csv`` and ``results.png`` for a training run and
    ``test_results.csv`` / ``.png`` for a test (see the module's docstring).

    Args:
        draw: write the pictures (False: the tables only).

    A validation adds about the time of one matplotlib figure (measured in
    ``benchmarks/results_files.py``).
    """

    priority = 'LOW'

    def __init__(self, draw: bool = True) -> None:
        self.draw = draw
        self._rows: list[dict] = []
        self._steps: list[dict] = []
        self._since_val: list[dict] = []
        self._started = 0.0
        self._offset = 0.0  # run time before this process (a resumed run)

    # ------------------------------------------------------------------ training

    def before_train(self, runner) -> None:
        self._started = time.perf_counter()
        work = Path(runner.work_dir)
        done = runner.iter
        self._rows, self._steps = [], []
        if done and (work / RESULTS_CSV).is_file():  # resumed: go on from the files
            self._rows = [r for r in read_table(work / RESULTS_CSV) if r.get('step', 0) <= done]
            self._offset = float(self._rows[-1].get('time', 0.0)) if self._rows else 0.0
        if done and (work / STEPS_JSONL).is_file():
            for line in (work / STEPS_JSONL).read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut by a kill
                    continue
                if record.get('step', 0) <= done:
                    self._steps.append(record)
        if runner.rank == 0:
            # the files hold what this run goes on from (a resumed run's later lines, written
            # after its checkpoint, are dropped: those steps are trained again)
            _write_atomic(work / STEPS_JSONL, ''.join(json.dumps(s) + '\n' for s in self._steps))
            if self._rows:
                write_table(self._rows, work / RESULTS_CSV)
        last = self._rows[-1]['step'] if self._rows else 0
        self._since_val = [s for s in self._steps if s['step'] > last]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        record = {'step': runner.iter + 1}
        try:
            record['lr'] = float(runner.optim_wrapper.get_lr()['lr'][0])
        except (AttributeError, KeyError, IndexError, TypeError):
            pass
        trained = runner.message_hub.get_info('task')
        if trained is not None:
            record['trained'] = str(trained)
        for key, value in (outputs or {}).items():
            number = _number(value)
            if '/' in key and _is_loss(key) and number is not None:
                record[key] = number
        self._steps.append(record)
        self._since_val.append(record)
        if runner.rank == 0:  # at once: a kill after the next checkpoint keeps this step
            with (Path(runner.work_dir) / STEPS_JSONL).open('a') as handle:
                handle.write(json.dumps(record) + '\n')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if runner.rank != 0 or not metrics or not self._started:
            return  # (a validation outside training has no steps to show)
        row: dict = {'step': runner.iter,
                     'time': round(self._offset + time.perf_counter() - self._started, 1)}
        if self._steps and 'lr' in self._steps[-1]:
            row['lr'] = self._steps[-1]['lr']
        sums: dict[str, list[float]] = {}
        for record in self._since_val:
            for key, value in record.items():
                if _is_loss(key) and '/' in key:
                    sums.setdefault(key, []).append(value)
        row.update({k: sum(v) / len(v) for k, v in sums.items()})
        row.update({k: v for k, v in ((k, _number(v)) for k, v in metrics.items())
                    if v is not None})
        self._rows = [r for r in self._rows if r['step'] != row['step']] + [row]
        self._since_val = []
        self._flush(runner)

    def after_train(self, runner) -> None:
        if runner.rank == 0:
            self._flush(runner, draw=False)

    def _flush(self, runner, draw: bool = True) -> None:
        work = Path(runner.work_dir)
        if self._rows:
            write_table(self._rows, work / RESULTS_CSV)
            if draw and self.draw:
                draw_results(self._rows, self._steps, work / RESULTS_PNG,
                             _headline_names(runner), title=Path(work).name)

    # ------------------------------------------------------------------ test

    def after_test_epoch(self, runner, metrics=None) -> None:
        if runner.rank != 0 or not metrics:
            return
        values = {k: v for k, v in ((k, _number(v)) for k, v in metrics.items())
                  if v is not None}
        work = Path(runner.work_dir)
        write_table([values], work / TEST_CSV)
        if self.draw:
            draw_test_results(values, work / TEST_PNG, _headline_names(runner),
                              title=Path(work).name)
