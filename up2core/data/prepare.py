"""Datasets that a config can generate on first use (the embedded Shapes data).

A dataset config may carry ``prepare=dict(type='shapes', num_train=..., ...)``; the dataset calls
:func:`prepare_data` before reading, which generates the data under ``data_root`` unless it is
already there.  A file lock makes concurrent callers (several ranks, train and val datasets) wait
for one generation instead of writing the same files together.
"""

from __future__ import annotations

import fcntl
from pathlib import Path


def prepare_data(data_root: str, spec: dict) -> Path:
    """Make sure the data described by ``spec`` exists under ``data_root``."""
    spec = dict(spec)
    kind = spec.pop('type', None)
    if kind != 'shapes':
        raise ValueError(f"prepare={{'type': {kind!r}}}: the only data UP2 can generate is "
                         f"'shapes'")
    from up2core.data.shapes import ShapesSpec, generate_shapes

    root = Path(data_root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f'.{root.name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            generate_shapes(root, ShapesSpec(**spec))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root
