"""Runs side by side (``up2 compare RUN_DIR RUN_DIR ... --out DIR``).

Reads each run's ``results.csv`` (:mod:`up2core.engine.results`; a run of UP2 < 0.9 without
one: its ``metrics.jsonl``) and writes to ``DIR``:

* ``compare.png``: per task, each run's headline metric at every validation (top row) and the
  task's loss at every step it trained, smoothed (bottom row; ``steps.jsonl``), on a shared
  step axis;
* ``compare.md``: a column per run, a line per headline metric (``best / final``), with the
  steps and time; ``compare.csv``: the same, a row per run.

A finetune that replayed its base's tasks (``up2 train --data``, by default) is compared on
the same data as its base: its ``replay_<task>`` series (the config's data) are shown as
``<task>``, its own data's as ``<task> (own data)``.  (A ``--plain-finetune`` run leaves no such
mark: its ``<task>`` is its own data; label it so with ``--labels``.)

A task's headline metrics are its plugin's ``Task.headline_metrics`` (looked up by the task's
name, ``replay_<task>`` as ``<task>``); a task the registry does not know shows its first three.

Examples:
    >>> compare_runs(['work_dirs/seed0', 'work_dirs/seed1'], 'work_dirs/compare')  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from up2core.engine.results import (
    RESULTS_CSV,
    STEPS_JSONL,
    _finite,
    _is_loss,
    _number,
    headlines,
    read_table,
    task_of,
    write_table,
)
from up2core.errors import UserError


@dataclass
class Run:
    """One run's validations (rows of ``results.csv``) and its label."""

    path: Path
    label: str
    rows: list[dict] = field(default_factory=list)
    #: its training steps (``steps.jsonl``), when it wrote them
    steps: list[dict] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        return keys


def read_run(path: str | Path, label: str | None = None) -> Run:
    """The validations of the run in work dir ``path``.

    Raises:
        UserError: ``path`` is not a run's work dir (no ``results.csv`` nor
            ``metrics.jsonl``), or it has no validation yet.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f'{path}: not a directory; give the work dir of a run (what '
                        f'up2 train --work-dir named)')
    rows: list[dict] = []
    if (path / RESULTS_CSV).is_file():
        rows = read_table(path / RESULTS_CSV)
    elif (path / 'metrics.jsonl').is_file():  # written before results.csv existed
        for line in (path / 'metrics.jsonl').read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            rows.append({'step': record.pop('iter', None), **record})
    else:
        raise UserError(f'{path}: no {RESULTS_CSV} or metrics.jsonl: not the work dir of an '
                        f'up2 train run, or one that has not validated yet')
    rows = [r for r in rows if _number(r.get('step')) is not None]
    if not rows:
        raise UserError(f'{path}: the run has no validation yet; compare it after its first '
                        f'(train_cfg.val_interval)')
    steps = []
    if (path / STEPS_JSONL).is_file():
        for line in (path / STEPS_JSONL).read_text().splitlines():
            try:
                steps.append(json.loads(line))
            except ValueError:  # a line cut by a kill
                continue
    replayed = {task_of(k)[len('replay_'):] for record in rows + steps for k in record
                if (task_of(k) or '').startswith('replay_') and not k.startswith('kept/')}
    if replayed:
        rows, steps = _on_the_configs_data(rows, replayed), _on_the_configs_data(steps, replayed)
    return Run(path, label or path.name, rows, steps)


#: a finetune's own data, in the task names of a comparison (``detection (own data)``)
OWN_DATA = ' (own data)'


def _on_the_configs_data(records: list[dict], replayed: set[str]) -> list[dict]:
    """A finetune that replayed its base's tasks, named as the runs it is compared with: its
    ``replay_<task>`` series are ``<task>`` (the config's data, as the base's are), its own
    ``<task>`` series are ``<task> (own data)``."""
    def renamed(key: str) -> str:
        task, _, rest = key.partition('/')
        if not rest or key.startswith('kept/'):
            return key
        if task in replayed:
            return f'{task}{OWN_DATA}/{rest}'
        if task.startswith('replay_') and task[len('replay_'):] in replayed:
            return f'{task[len("replay_"):]}/{rest}'
        return key

    return [{renamed(k): v for k, v in record.items()} for record in records]


def _task_loss(record: dict, task: str) -> float | None:
    """A task's loss in one record: its total (``<task>/loss``), else the sum of its terms."""
    if _finite(record.get(f'{task}/loss')):
        return float(record[f'{task}/loss'])
    terms = [float(v) for k, v in record.items()
             if task_of(k) == task and _is_loss(k) and _finite(v)]
    return sum(terms) if terms else None


def loss_curve(run: Run, task: str) -> list[tuple[float, float]]:
    """``(step, loss)`` of ``task`` in ``run``: every step it trained, as a running mean over
    a 25th of them (``steps.jsonl``); from the validations' averages when the run has no
    steps file."""
    points = [(s['step'], _task_loss(s, task)) for s in run.steps]
    points = [(x, y) for x, y in points if y is not None]
    if not points:
        points = [(r['step'], _task_loss(r, task)) for r in run.rows]
        return [(x, y) for x, y in points if y is not None]
    window = max(1, len(points) // 25)
    smoothed, total = [], 0.0
    for index, (x, y) in enumerate(points):
        total += y - (points[index - window][1] if index >= window else 0.0)
        smoothed.append((x, total / min(index + 1, window)))
    return smoothed


def _named(task: str) -> tuple[str, ...]:
    """``Task.headline_metrics`` of the plugin registered as ``task`` (or as the task a
    ``replay_<task>`` copies); empty if none is."""
    from up2core.registry import TASKS

    name = task[len('replay_'):] if task.startswith('replay_') else task
    name = name.removesuffix(OWN_DATA)
    try:
        cls = TASKS.get(name)
    except Exception:  # an unknown name: the registry's own error is not the user's here
        return ()
    return tuple(getattr(cls, 'headline_metrics', ()) or ())


def _tasks(runs: list[Run]) -> list[str]:
    tasks: list[str] = []
    for run in runs:
        for key in run.keys:
            task = task_of(key)
            if task is not None and task not in tasks and not key.startswith('kept/'):
                tasks.append(task)
    return tasks


def summary_rows(runs: list[Run]) -> list[dict]:
    """A row per run: label, steps, time, and per task ``<metric> best`` / ``final``."""
    table = []
    for run in runs:
        last = run.rows[-1]
        row: dict = {'run': run.label, 'steps': int(last['step'])}
        if _finite(last.get('time')):
            row['time_s'] = round(float(last['time']))
        for task in _tasks(runs):
            for key in headlines(task, run.keys, _named(task)):
                values = [float(r[key]) for r in run.rows if _finite(r.get(key))]
                if not values or key.startswith('kept/'):
                    continue
                row[f'{key} best'] = max(values)
                row[f'{key} final'] = values[-1] if _finite(last.get(key)) else math.nan
        table.append(row)
    return table


def _markdown(rows: list[dict]) -> str:
    """A column per run, a line per quantity: steps, time, then each headline metric as
    ``best / final``."""
    def cell(value) -> str:
        if value is None or value == '':
            return ''
        if isinstance(value, float):
            return '-' if math.isnan(value) else f'{value:.4g}'
        return str(value)

    metrics: list[str] = []
    for row in rows:
        metrics += [k[:-len(' best')] for k in row
                    if k.endswith(' best') and k[:-len(' best')] not in metrics]
    lines = ['| | ' + ' | '.join(str(row['run']) for row in rows) + ' |',
             '|---|' + '---|' * len(rows)]
    for key, label in (('steps', 'steps'), ('time_s', 'time (s)')):
        if any(key in row for row in rows):
            lines.append(f'| {label} | ' + ' | '.join(cell(row.get(key)) for row in rows) + ' |')
    for metric in metrics:
        cells = []
        for row in rows:
            best, final = row.get(f'{metric} best'), row.get(f'{metric} final')
            cells.append('' if best is None else f'{cell(best)} / {cell(final)}')
        lines.append(f'| {metric} (best / final) | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def draw_comparison(runs: list[Run], path: str | Path) -> Path:
    """``compare.png``: per task, the first headline metric of every run (top) and its
    loss (below: :func:`loss_curve`; left out when no run logged losses), four tasks to a
    row."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks = _tasks(runs) or ['(none)']
    with_losses = any(_is_loss(k) for run in runs for k in run.keys) or \
        any(run.steps for run in runs)
    per_task = 2 if with_losses else 1  # (a run read from metrics.jsonl has no losses)
    columns = min(4, len(tasks))
    lines = math.ceil(len(tasks) / columns)
    figure, axes = plt.subplots(per_task * lines, columns,
                                figsize=(4.4 * columns, 3.1 * per_task * lines), squeeze=False)
    for extra in range(len(tasks), lines * columns):
        for part in range(per_task):
            axes[per_task * (extra // columns) + part][extra % columns].axis('off')
    for place, task in enumerate(tasks):
        row, column = per_task * (place // columns), place % columns
        top = axes[row][column]
        bottom = axes[row + 1][column] if with_losses else None
        metric_name = None
        for index, run in enumerate(runs):
            colour = f'C{index % 10}'
            chosen = [k for k in headlines(task, run.keys, _named(task))
                      if not k.startswith('kept/') and any(_finite(r.get(k)) for r in run.rows)]
            if chosen:
                key = chosen[0]
                metric_name = metric_name or key.split('/', 1)[1]
                points = [(r['step'], float(r[key])) for r in run.rows if _finite(r.get(key))]
                top.plot(*zip(*points), color=colour, marker='o', markersize=3,
                         label=run.label)
            points = loss_curve(run, task)
            if points and bottom is not None:
                bottom.plot(*zip(*points), color=colour, linewidth=1.2, label=run.label,
                            marker='.' if len(points) < 30 else None)
        top.set_title(f'{task}: {metric_name or "no metric"}', fontsize=10)
        if bottom is not None:
            bottom.set_title(f'{task}: loss', fontsize=10)
        for ax in (top, bottom) if bottom is not None else (top,):
            ax.set_xlabel('step', fontsize=8)
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, framealpha=0.6)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def compare_runs(paths: list[str | Path], out: str | Path,
                 labels: list[str] | None = None) -> dict[str, Path]:
    """Write ``compare.png``, ``compare.md`` and ``compare.csv`` for the runs in ``paths``
    into ``out``; return their paths by kind.

    Raises:
        UserError: fewer than one run, labels that do not match the runs, a path that is not
            a run's work dir.
    """
    if not paths:
        raise UserError('give at least one run directory')
    if labels is not None and len(labels) != len(paths):
        raise UserError(f'--labels: {len(labels)} labels for {len(paths)} runs; give one per '
                        f'run, in the same order')
    names = [Path(p).name for p in paths]
    if labels is None and len(set(names)) < len(names):  # seed0/work and seed1/work
        names = [str(Path(p)) for p in paths]
    runs = [read_run(p, (labels or names)[i]) for i, p in enumerate(paths)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(runs)
    (out / 'compare.md').write_text(_markdown(rows))
    return {'png': draw_comparison(runs, out / 'compare.png'),
            'md': out / 'compare.md', 'csv': write_table(rows, out / 'compare.csv')}
