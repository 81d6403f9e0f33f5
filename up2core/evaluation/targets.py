"""A run's final metrics as one table, against the targets its config declares.

A config may declare what a run must reach, as minimum values of ``task/metric`` keys::

    targets = {'classification/top1': 92.0, 'detection/bbox_mAP': 0.70}

``up2 train`` prints this table after the last validation (and ``up2 test`` for its metrics);
the metrics file (``<work_dir>/metrics.json``) holds every metric.  A metric that is NaN or
missing never meets its target.

Examples:
    >>> print(metrics_table({'a/top1': 93.1, 'b/mAP': 0.5}, {'a/top1': 92.0, 'b/mAP': 0.6}))
    metric  value  target
    a/top1  93.10  >= 92.00  met
    b/mAP   0.500  >= 0.600  MISSED
    2 targets: 1 met, 1 missed
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _format(value: float | None) -> str:
    if value is None:
        return 'n/a'
    return f'{value:.3f}' if abs(value) < 1 else f'{value:.2f}'


def target_results(metrics: Mapping, targets: Mapping[str, float]) -> dict[str, bool]:
    """``metric -> met`` for every target (a missing or NaN metric is not met)."""
    out = {}
    for key, minimum in targets.items():
        value = _number(metrics.get(key))
        out[key] = value is not None and value >= float(minimum)
    return out


def metrics_table(metrics: Mapping, targets: Mapping[str, float] | None = None) -> str:
    """The table (text): every target's metric, value, target and verdict; without targets,
    every metric but ``iter``."""
    if targets:
        met = target_results(metrics, targets)
        rows = [(key, _format(_number(metrics.get(key))),
                 f'>= {_format(float(targets[key]))}', 'met' if met[key] else 'MISSED')
                for key in targets]
        header = ('metric', 'value', 'target', '')
    else:
        rows = [(key, _format(_number(value)), '', '') for key, value in sorted(metrics.items())
                if key != 'iter']
        header = ('metric', 'value', '', '')
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3]]
        lines.append('  '.join(cells).rstrip())
    if targets:
        hits = sum(target_results(metrics, targets).values())
        lines.append(f'{len(targets)} targets: {hits} met, {len(targets) - hits} missed')
    return '\n'.join(lines)


__all__ = ['metrics_table', 'target_results']
