"""Hooks UP2 adds to MMEngine's."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections import deque
from pathlib import Path

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook

from up2core.engine.checkpoint import non_finite_tensors
from up2core.engine.learning import WARNINGS_KEY
from up2core.errors import CheckpointError
from up2core.registry import HOOKS


def _plain(value):
    return value.item() if hasattr(value, 'item') else value


@HOOKS.register_module()
class MetricsFileHook(Hook):
    """Write the latest validation metrics to ``<work_dir>/metrics.json`` as flat JSON, and
    every validation's as one line of ``<work_dir>/metrics.jsonl``.

    Keys are ``task/metric``; ``iter`` says after which training iteration they were measured.
    Scripts (quality runs, benchmarks) read these files instead of parsing logs.  A run resumed
    with ``--resume`` appends to the history; a validation interrupted by a kill is run again on
    resume (:class:`UnmixedTrainLoop`), so each one has exactly one line.

    Args:
        filename: the latest metrics, relative to the work dir.
        history: the history file (JSON Lines); ``None``: none.
    """

    priority = 'LOW'

    def __init__(self, filename: str = 'metrics.json',
                 history: str | None = 'metrics.jsonl') -> None:
        self.filename = filename
        self.history = history

    def recorded_iteration(self, runner) -> int | None:
        """The ``iter`` of the metrics file in ``runner``'s work dir, if it holds one.

        Called on resume, it also settles the history after a kill: a cut last line is
        removed, and metrics the kill kept from the history (between the two writes) are
        added to it."""
        work_dir = Path(runner.work_dir)
        try:
            latest = json.loads((work_dir / self.filename).read_text())
            iteration = int(latest['iter'])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if self.history:
            path = work_dir / self.history
            text = path.read_text() if path.is_file() else ''
            if text and not text.endswith('\n'):
                text = text[:text.rfind('\n') + 1]
            lines = text.splitlines()
            try:
                last = json.loads(lines[-1]).get('iter') if lines else None
            except ValueError:
                last = None
            if last != iteration:
                text += json.dumps(latest, sort_keys=True) + '\n'
            path.write_text(text)
        return iteration

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics or runner.rank != 0:
            return
        flat = {key: _plain(value) for key, value in metrics.items()}
        flat['iter'] = runner.iter
        # what LearningWatch found (learning/<group>/collapsed_at: iteration), if anything
        flat.update(runner.message_hub.get_info(WARNINGS_KEY) or {})
        path = Path(runner.work_dir) / self.filename
        staged = path.with_name(f'.{path.name}.partial')
        staged.write_text(json.dumps(flat, indent=2, sort_keys=True) + '\n')
        os.replace(staged, path)  # a kill never leaves half a metrics.json
        if self.history:  # (a kill before this line: recorded_iteration adds it on resume)
            with (Path(runner.work_dir) / self.history).open('a') as handle:
                handle.write(json.dumps(flat, sort_keys=True) + '\n')


def _write_failure(exc: OSError, final: Path, previous: str | None) -> str:
    """One line: why ``final`` could not be written, and which checkpoint is still there."""
    folder = final.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = 'no space left on device' if exc.errno == errno.ENOSPC else 'disk quota exceeded'
        try:
            free = f'{shutil.disk_usage(folder).free / 2**20:.0f} MiB free'
        except OSError:
            free = 'free space unknown'
        size = ''
        if previous and Path(previous).is_file():
            size = f', the last checkpoint took {Path(previous).stat().st_size / 2**20:.0f} MiB'
        reason += f' ({free}{size})'
    else:
        reason = (exc.strerror or str(exc)).lower()
    if previous and Path(previous).is_file():
        kept = (f'the previous checkpoint {Path(previous).name} is intact and last_checkpoint '
                f'names it: fix this, then continue from it with up2 train ... --resume')
    else:
        kept = 'no earlier checkpoint of this run was written: fix this and train again'
    return f'could not write checkpoint {final.name} in {folder}: {reason}; {kept}'


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's CheckpointHook, made safe against kills and divergence.

    MMEngine writes ``iter_N.pth`` in place and deletes the oldest kept checkpoint *before*
    writing the new one, so a kill during the write (minutes for a large model) can leave a
    partial file and, with ``max_keep_ckpts=1``, no valid checkpoint at all.  Here, on a local
    disk:

    1. the checkpoint is written to ``.iter_N.pth.partial`` and renamed (atomic on POSIX);
    2. only then are checkpoints beyond ``max_keep_ckpts`` deleted;
    3. ``last_checkpoint`` is rewritten last, itself through a rename.

    A checkpoint whose weights hold NaN or infinity is refused with
    :class:`~up2core.errors.CheckpointError` instead of being written as if healthy.  Other
    storage backends fall back to MMEngine's behaviour.  Arguments are CheckpointHook's.
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict') or {}
        bad = non_finite_tensors(state)
        if bad:
            raise CheckpointError(
                f'refusing to save a checkpoint at iteration {runner.iter}: {len(bad)} of '
                f'{len(state)} weight tensors are not finite (e.g. {bad[0]}); the run diverged. '
                f'Lower the learning rate or resume from the last checkpoint in '
                f'{runner.work_dir}.')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        final = Path(self.file_backend.join_path(self.out_dir, filename))
        partial = final.with_name(f'.{filename}.partial')
        previous = self.last_ckpt
        self.last_ckpt = str(final)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(self.out_dir, partial.name, self.file_client_args,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta,
                                   by_epoch=self.by_epoch, backend_args=self.backend_args,
                                   **self.args)
        except OSError as exc:  # a full disk, a quota, a read-only or vanished folder
            self.last_ckpt = previous
            runner.message_hub.update_info('last_ckpt', previous)
            if partial.is_file() or partial.is_symlink():
                partial.unlink()  # what was written of it: the space back
            raise CheckpointError(_write_failure(exc, final, previous)) from None
        if not is_main_process():
            return
        os.replace(partial, final)
        if self.max_keep_ckpts > 0:
            kept = list(self.keep_ckpt_ids)
            if not kept or kept[-1] != step:
                kept.append(step)
            stale, kept = kept[:-self.max_keep_ckpts], kept[-self.max_keep_ckpts:]
            for old_step in stale:
                old = Path(self.file_backend.join_path(self.out_dir,
                                                       self.filename_tmpl.format(old_step)))
                if old.is_file() and old != final:
                    old.unlink()
                    shards = old.with_name(f'{old.name}.dcp')  # a sharded checkpoint's
                    if shards.is_dir():
                        shutil.rmtree(shards)
            self.keep_ckpt_ids = deque(kept, maxlen=self.max_keep_ckpts)
            runner.message_hub.update_info('keep_ckpt_ids', kept)
        pointer = Path(runner.work_dir) / 'last_checkpoint'
        staged = pointer.with_name('.last_checkpoint.partial')
        staged.write_text(self.last_ckpt)
        os.replace(staged, pointer)
