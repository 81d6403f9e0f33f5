"""Loading checkpoints safely: MMEngine's under ``weights_only=True``, and clear refusals.

:func:`verify_checkpoint` opens a checkpoint as UP2 loads it and names the file and the fault
(missing, empty, truncated, hostile, non-finite); :func:`latest_valid_checkpoint` picks what
``--resume`` continues from, skipping broken candidates.

Why an allow-list (torch >= 2.6):

MMEngine 0.10 calls ``torch.load`` without ``weights_only``; torch >= 2.6 then refuses the
checkpoints MMEngine itself writes, because the message hub's state holds
:class:`~mmengine.logging.HistoryBuffer` objects and numpy scalars/arrays.  Rather than turning
``weights_only`` off (which would let a checkpoint run arbitrary code), we allow-list exactly the
globals that ``Runner.save_checkpoint`` produces, found with
``torch.serialization.get_unsafe_globals_in_checkpoint`` on real checkpoints:

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* ``builtins.getattr``: a HistoryBuffer keeps bound methods (``min``, ``max``, ``mean``...) in a
  dict, and pickle rebuilds a bound method as ``getattr(buffer, 'min')``.  Only attribute *reads* on
  objects that were themselves allowed; calling the result would need another allowed global;
* numpy's array/scalar reconstructors and dtypes (under both ``numpy.core`` and ``numpy._core``
  names, so checkpoints written with numpy 1.x load with numpy 2.x and back).
"""

from __future__ import annotations

import builtins
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from up2core.errors import CheckpointError

_DONE = False


def _numpy_globals() -> list:
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    found: list = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        found += [(fn, f'numpy.core.multiarray.{name}'), (fn, f'numpy._core.multiarray.{name}')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes by their class
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return found


def allow_mmengine_checkpoints() -> None:
    """Allow-list the globals of MMEngine checkpoints for ``torch.load(weights_only=True)``.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    global _DONE
    if _DONE or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    from mmengine.logging.history_buffer import HistoryBuffer

    torch.serialization.add_safe_globals([HistoryBuffer, builtins.getattr, *_numpy_globals()])
    _DONE = True


def _describe_load_error(exc: BaseException, path: Path) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if 'Weights only load failed' in str(exc) or isinstance(exc, pickle.UnpicklingError):
        found = re.search(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)', str(exc))
        what = f' ({found[1]})' if found else ''
        return (f'it holds Python objects that would run code when loaded{what}, so UP2 refuses '
                f'it; use checkpoints written by UP2/MMEngine, or re-save the weights alone from '
                f'a source you trust')
    if not zipfile.is_zipfile(path) or 'zip archive' in text or 'PytorchStreamReader' in text:
        # torch writes zip archives; a truncated one has lost its central directory (at the end)
        return ('it is truncated or not a PyTorch checkpoint (was the run killed while writing '
                f'it?): {type(exc).__name__}: {text}')
    if isinstance(exc, EOFError) or 'Ran out of input' in text:
        return 'it is empty or truncated'
    return f'it cannot be read: {type(exc).__name__}: {text}'


def non_finite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or infinity."""
    return [name for name, value in state.items() if torch.is_tensor(value)
            and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def verify_checkpoint(path: str | Path, check_finite: bool = False) -> dict:
    """Open ``path`` the way UP2 loads checkpoints and return it, or raise CheckpointError.

    ``torch.load(weights_only=True)`` with the MMEngine allow-list; memory-mapped, so a large
    checkpoint is not read twice.  ``check_finite`` also refuses weights holding NaN or infinity
    (a diverged run's), naming how many tensors are affected.

    Raises:
        CheckpointError: naming the file and what is wrong with it (missing, empty, truncated,
            hostile, non-finite).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes): the run was probably "
                              f"killed while writing it; use an earlier checkpoint")
    allow_mmengine_checkpoints()
    try:
        try:
            checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except OSError:  # mmap refuses some broken files without saying why: read it plainly
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ValueError
        raise CheckpointError(f"checkpoint '{path}' cannot be used: "
                              f'{_describe_load_error(exc, path)}') from None
    if check_finite:
        state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
        bad = non_finite_tensors(state)
        if bad:
            raise CheckpointError(
                f"checkpoint '{path}' holds non-finite weights in {len(bad)} of {len(state)} "
                f"tensors (e.g. {bad[0]}): the run that wrote it diverged; use an earlier "
                f"checkpoint or retrain with a lower learning rate")
    return checkpoint


def _iteration(path: Path) -> int:
    found = re.search(r'(\d+)', path.stem)
    return int(found[1]) if found else -1


def latest_valid_checkpoint(work_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The newest readable checkpoint of ``work_dir``, and why newer candidates were skipped.

    Candidates: the file ``last_checkpoint`` names, then every ``*.pth`` of the work dir, newest
    iteration first.  A truncated, empty or unreadable one is skipped (and reported), never used.
    """
    work_dir = Path(work_dir)
    candidates: list[Path] = []
    pointer = work_dir / 'last_checkpoint'
    named = None
    if pointer.is_file() and pointer.read_text().strip():
        named = Path(pointer.read_text().strip())
        candidates.append(named)
    candidates += sorted(work_dir.glob('*.pth'), key=_iteration, reverse=True)
    skipped: list[str] = []
    seen: set[Path] = set()
    for candidate in sorted(dict.fromkeys(candidates), key=_iteration, reverse=True):
        resolved = candidate.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            verify_checkpoint(candidate)
        except CheckpointError as exc:
            skipped.append(f'{exc} (named by {pointer})' if candidate == named else str(exc))
            continue
        return candidate, skipped
    return None, skipped


class LoadReport:
    """How a checkpoint's weights fit a model: what loads, and what does not.

    * ``loaded``: tensors of the model the checkpoint fills;
    * ``missing``: tensors of the model the checkpoint lacks (they keep their initial values);
    * ``unexpected``: tensors of the checkpoint the model has no place for;
    * ``mismatched``: ``(name, checkpoint shape, model shape)`` of tensors of both whose shapes
      differ (not loaded; they keep their initial values);
    * ``other_tasks``: checkpoint tensors of tasks this model does not have (a checkpoint of five
      tasks scored on two): expected, never an error.

    * ``untrained_tasks``: tasks of the model the checkpoint holds none of the own tensors of
      (it was trained without them, e.g. with ``--tasks``); their tensors are not counted as
      missing, and the callers leave such tasks out or refuse to score them.

    Tensors the model holds empty until first use (a caption vocabulary built from the data)
    take the checkpoint's whatever its shape: they are loaded, not mismatched; absent from an
    older checkpoint, they are not missing either (they are built on first use).
    """

    def __init__(self, model_state: dict, checkpoint_state: dict, tasks=(),
                 groups=()) -> None:
        self.loaded: list[str] = []
        self.missing: list[str] = []
        self.mismatched: list[tuple[str, tuple, tuple]] = []
        task_groups = dict(zip(tasks, groups)) if groups else {t: t for t in tasks}
        self.untrained_tasks = [
            task for task, group in task_groups.items()
            if (own := _own_tensors(model_state, task, group, task_groups))
            and not any(name in checkpoint_state for name in own)]
        untrained = {name for task in self.untrained_tasks for name in
                     _own_tensors(model_state, task, task_groups[task], task_groups)}
        for name, value in model_state.items():
            saved = checkpoint_state.get(name)
            if saved is None:
                if name not in untrained and value.numel() > 0:
                    self.missing.append(name)
            elif tuple(saved.shape) != tuple(value.shape) and value.numel() > 0:
                self.mismatched.append((name, tuple(saved.shape), tuple(value.shape)))
            else:
                self.loaded.append(name)
        tasks, groups = set(tasks), set(groups) | set(tasks)
        extra = [name for name in checkpoint_state if name not in model_state]
        # a task's own tensors, and the learned temperature of its likelihood group
        self.other_tasks = [n for n in extra if (n.startswith('tasks.')
                                                 and n.split('.')[1] not in tasks)
                            or (n.startswith('likelihood.') and n.split('.')[-1] not in groups)]
        self.unexpected = [n for n in extra if n not in self.other_tasks]

    @property
    def reinitialised(self) -> list[str]:
        """Tensors of the model that keep their initial values (missing or mismatched)."""
        return self.missing + [name for name, _, _ in self.mismatched]

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """One line: the counts, then the first names of each kind that did not load."""
        parts = [f'{len(self.loaded)} loaded', f'{len(self.missing)} missing',
                 f'{len(self.unexpected)} unexpected', f'{len(self.mismatched)} shape-mismatched',
                 f'{len(self.reinitialised)} re-initialised']
        if self.other_tasks:
            parts.append(f'{len(self.other_tasks)} of tasks this config leaves out (ignored)')
        if self.untrained_tasks:
            parts.append(f"tasks it did not train: {', '.join(self.untrained_tasks)}")
        text = ', '.join(parts)
        details = []
        if self.missing:
            details.append(f"missing: {', '.join(self.missing[:3])}")
        if self.unexpected:
            details.append(f"unexpected: {', '.join(self.unexpected[:3])}")
        if self.mismatched:
            details.append('mismatched: ' + ', '.join(f'{n} {list(c)} vs {list(m)}'
                                                       for n, c, m in self.mismatched[:2]))
        return text + (f" ({'; '.join(details)})" if details else '')

    def as_dict(self) -> dict:
        return {'loaded': len(self.loaded), 'missing': self.missing,
                'untrained_tasks': self.untrained_tasks,
                'unexpected': self.unexpected,
                'mismatched': [[n, list(c), list(m)] for n, c, m in self.mismatched],
                'reinitialised': self.reinitialised, 'other_tasks': self.other_tasks}


def _own_tensors(state: dict, task: str, group: str, task_groups: dict) -> list[str]:
    """A task's own tensors of ``state``: under ``tasks.<task>.``, and its likelihood group's
    temperature when no other task shares the group."""
    own = [name for name in state if name.startswith(f'tasks.{task}.')]
    shared = sum(g == group for g in task_groups.values()) > 1
    own += [name for name in state if name.startswith('likelihood.')
            and name.split('.')[-1] == group and not shared]
    return own


def load_report(model, checkpoint: str | Path | dict) -> LoadReport:
    """A :class:`LoadReport` of ``checkpoint`` (a path or a loaded checkpoint) for ``model``."""
    if not isinstance(checkpoint, dict):
        checkpoint = verify_checkpoint(checkpoint)
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()
             if torch.is_tensor(v)}
    inner = getattr(model, 'module', model)
    tasks = getattr(inner, 'tasks', {})
    return LoadReport(inner.state_dict(), state, tasks=tasks.keys(),
                      groups=[getattr(t, 'likelihood_group', name) for name, t in tasks.items()])


def check_fits(model, checkpoint: str | Path, partial: bool = False) -> LoadReport:
    """Refuse a checkpoint whose weights do not fit ``model`` exactly, unless ``partial``.

    What ``up2 test``, ``up2 infer``, ``up2 demo`` and ``up2 export`` call before scoring or
    serving: a checkpoint of another config would leave parts of the model at their random
    initial values and score (say) mask AP 0.0 without a word.

    Raises:
        CheckpointError: naming the file, the counts and the first tensors, and the way out.
    """
    report = load_report(model, checkpoint)
    if not report.exact and not partial:
        raise CheckpointError(f"checkpoint '{checkpoint}' does not fit this config: "
                              f'{report.summary()}; use the config it was trained with, or '
                              f'pass --partial-load to load what fits')
    return report
