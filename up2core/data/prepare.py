"""Datasets that a config can generate on first use (the embedded Shapes data).

A dataset config may carry ``prepare=dict(type='shapes', num_train=..., ...)``; the dataset calls
:func:`prepare_data` before reading, which generates the data under ``data_root`` unless it is
already there.  A file lock makes concurrent callers (several ranks, train and val datasets) wait
for one generation instead of writing the same files together.
"""

from __future__ import annotations

import logging

import fcntl
import os
from dataclasses import asdict
from pathlib import Path

#: ``1`` makes :func:`prepare_data` regenerate data whose spec differs from the config's
#: (``up2 train/test --overwrite-data`` sets it, so dataloader workers see it too).
OVERWRITE_ENV = 'UP2_OVERWRITE_DATA'
_told: set[str] = set()


def prepare_data(data_root: str, spec: dict, overwrite: bool | None = None) -> Path:
    """Make sure data described by ``spec`` exists under ``data_root``.

    An empty or missing folder gets the data generated.  A folder that already holds Shapes of
    the current format generated with another spec (another seed, size or number of images:
    e.g. a folder a config was pointed at with ``shapes_data_root=DIR``) is used as it is: what
    matters is that it is complete Shapes data, and the difference is logged once.  With
    ``overwrite`` (default: the ``UP2_OVERWRITE_DATA`` environment variable) such a folder is
    regenerated with the config's spec instead.
    """
    spec = dict(spec)
    kind = spec.pop('type', None)
    if kind != 'shapes':
        raise ValueError(f"prepare={{'type': {kind!r}}}: the only data UP2 can generate is "
                         f"'shapes'")
    from up2core.data.shapes import FORMAT_VERSION, ShapesSpec, generate_shapes, read_meta

    if overwrite is None:
        overwrite = os.environ.get(OVERWRITE_ENV, '').strip().lower() in ('1', 'true', 'yes')
    wanted = ShapesSpec(**spec)
    root = Path(data_root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f'.{root.name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            meta = read_meta(root)
            usable = meta is not None and meta.get('format_version') == FORMAT_VERSION
            if usable and meta.get('spec') != asdict(wanted) and not overwrite:
                _tell_other_spec(root, meta['spec'], asdict(wanted))
            else:
                generate_shapes(root, wanted, overwrite=overwrite)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


def _tell_other_spec(root: Path, found: dict, wanted: dict) -> None:
    if str(root) in _told:
        return
    _told.add(str(root))
    from mmengine.logging import print_log

    differs = ', '.join(f'{k}={found.get(k)} (config: {v})' for k, v in wanted.items()
                        if found.get(k) != v)
    print_log(f'{root} holds Shapes generated with {differs}: using the data there; '
              f'`--overwrite-data` (UP2_OVERWRITE_DATA=1) regenerates it with the config\'s '
              f'spec', logger='current', level=logging.WARNING)
