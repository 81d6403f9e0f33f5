"""What happens to a sample that cannot be loaded: fail fast and clearly, or skip and record it.

Datasets check at start-up what is cheap to check (listed files exist, labels in range, captions
non-empty, annotation fields present) and raise :class:`~up2core.errors.DataError` with the file,
the line or record, and the fix.  What only shows when a sample is loaded (a corrupt image) is
handled by :class:`BadSamplePolicy`, mixed into UP2's datasets:

* by default (``skip_bad_samples=False``) the first bad sample stops the run with a DataError
  that names the image, the sample and the option below;
* with ``skip_bad_samples=True`` (training only) the sample is skipped, another one is drawn,
  and the skip is logged and appended to ``<work_dir>/skipped_samples.jsonl`` (one json object
  per skip: dataset, index, image, error), so that nothing is lost silently.

Examples:
    >>> dict(type='ImageListDataset', ..., skip_bad_samples=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mmengine.logging import print_log

from up2core.errors import DataError

SKIPPED_FILE = 'skipped_samples.jsonl'
_record_dir: str | None = None


def set_skipped_samples_dir(path: str | os.PathLike | None) -> None:
    """Where skipped samples are recorded (the training loop sets the work dir).  Dataloader
    workers fork after this is set and inherit it."""
    global _record_dir
    _record_dir = None if path is None else str(path)


def skipped_samples_file() -> Path | None:
    return None if _record_dir is None else Path(_record_dir) / SKIPPED_FILE


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[-1] if text else ""}'


class BadSamplePolicy:
    """Mixin for a :class:`mmengine.dataset.BaseDataset`: name, or skip and record, samples whose
    pipeline fails (see the module documentation).  Takes the keyword ``skip_bad_samples``."""

    def __init__(self, *args, skip_bad_samples: bool = False, **kwargs) -> None:
        self.skip_bad_samples = skip_bad_samples
        super().__init__(*args, **kwargs)

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except DataError:
            raise
        except Exception as exc:  # decoders and transforms raise anything
            info = self.get_data_info(idx)
            image = info.get('img_path', '?')
            if not self.skip_bad_samples or self.test_mode:
                raise DataError(
                    f"{image}: sample {idx} of {type(self).__name__} ({self.ann_file}) could not "
                    f"be loaded ({_one_line(exc)}); fix or remove it, or set "
                    f"skip_bad_samples=True on the training dataset to skip and record such "
                    f"samples") from None
            self._record_skip(idx, image, exc)
            return None  # BaseDataset draws another index for a None sample in training

    def _record_skip(self, idx: int, image: str, exc: BaseException) -> None:
        print_log(f'skipped bad sample {idx} ({image}) of {type(self).__name__}: '
                  f'{_one_line(exc)}', logger='current', level=logging.WARNING)
        target = skipped_samples_file()
        if target is None:
            return
        line = json.dumps({'dataset': type(self).__name__, 'ann_file': str(self.ann_file),
                           'index': idx, 'image': image, 'error': _one_line(exc)})
        with open(target, 'a') as f:  # one short append per skip: safe from several workers
            f.write(line + '\n')


def check_files_exist(paths: list[tuple[str, str]], source: str) -> None:
    """Raise DataError naming the first missing files; ``paths`` are ``(file, where)`` pairs,
    ``where`` the line or record that lists it."""
    missing = [(file, where) for file, where in paths if not os.path.isfile(file)]
    if missing:
        shown = '; '.join(f"{where}: '{file}'" for file, where in missing[:3])
        more = f' (and {len(missing) - 3} more)' if len(missing) > 3 else ''
        raise DataError(f'{source}: {len(missing)} listed image(s) do not exist: {shown}{more}. '
                        f'Fix the paths (data_root, data_prefix) or remove those entries.')
