"""What a run shows on the terminal: where it is and what it scored, not how it was configured.

MMEngine writes everything a run does to the console and the log file alike: the whole config
(about 2,600 lines for the main job), the environment, every hook by priority, each parameter the
optimizer leaves out.  UP2 keeps the log file complete and the console short:

* :func:`quiet_console` lowers the console handler of a Runner's logger to warnings, and keeps
  off the console the warnings nobody running UP2 can act on (:data:`FILE_ONLY`), which still go
  to the log file.  :class:`~up2core.engine.runner.UP2Runner` calls it when it builds its logger.
* :class:`ConsoleProgressHook` prints one line per tenth of a phase (training steps, evaluation
  or test batches) with the rate and the time left, and where the log file is.

``up2 train|test --verbose`` (or ``UP2_VERBOSE=1``) gives back MMEngine's console.

Examples:
    >>> custom_hooks = [dict(type='ConsoleProgressHook', lines=10)]
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time

from mmengine.hooks import Hook

from up2core.registry import HOOKS

#: set (to anything but ``0``) for MMEngine's full console output
VERBOSE_ENV = 'UP2_VERBOSE'

#: warnings logged by MMEngine that say nothing a user of UP2 can act on: log file only
FILE_ONLY = (
    re.compile(r'is skipped since its requires_grad=False'),  # frozen layers, by design
    re.compile(r'"HardDiskBackend" is the alias of "LocalBackend"'),
    re.compile(r'"FileClient" will be deprecated'),
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, '0') not in ('', '0')


class _FileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in FILE_ONLY)


def quiet_console(logger: logging.Logger) -> None:
    """Warnings and errors only on ``logger``'s console handlers (not its file handlers),
    without the :data:`FILE_ONLY` ones; nothing changes under ``--verbose``."""
    if verbose():
        return
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) \
                and not isinstance(handler, logging.FileHandler):
            handler.setLevel(max(handler.level, logging.WARNING))
            if not any(isinstance(f, _FileOnly) for f in handler.filters):
                handler.addFilter(_FileOnly())


def _clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


@HOOKS.register_module()
class ConsoleProgressHook(Hook):
    """One progress line per ``1 / lines`` of a phase, on stderr, from the main process.

    Training: ``up2: train [ 52/260]  20%  loss 3.412  2.21 s/step  eta 0:07:40``; evaluation
    and test: ``up2: evaluate [3/6 batches]  50%  eta 0:00:18``, then the phase's wall time.
    Quiet under ``--verbose`` (MMEngine's logger hook prints its own lines then).

    Args:
        lines: progress lines per phase (at most).
    """

    priority = 'LOW'

    def __init__(self, lines: int = 10) -> None:
        self.lines = max(int(lines), 1)
        self._start = 0.0
        self._first_iter = 0

    @staticmethod
    def _say(runner, text: str) -> None:
        if runner.rank == 0 and not verbose():
            print(f'up2: {text}', file=sys.stderr, flush=True)

    def _every(self, total: int) -> int:
        return max(total // self.lines, 1)

    # ------------------------------------------------------------------ training

    def before_train(self, runner) -> None:
        self._start, self._first_iter = time.perf_counter(), runner.iter
        log = getattr(runner.logger, 'log_file', None) or runner.log_dir
        if runner.iter:  # MMEngine resumed before the loop started
            source = runner.cfg.get('load_from') if hasattr(runner, 'cfg') else None
            self._say(runner, f'train: resumed at step {runner.iter}'
                              + (f' from {source}' if source else ''))
        self._say(runner, f'train: {runner.max_iters - runner.iter} steps from step '
                          f'{runner.iter} (details: {log})')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        done, total = runner.iter + 1, runner.max_iters
        if done % self._every(total) and done != total:
            return
        per_step = (time.perf_counter() - self._start) / max(done - self._first_iter, 1)
        loss = ''
        if runner.message_hub.get_scalar('train/loss') is not None:
            loss = f"  loss {runner.message_hub.get_scalar('train/loss').current():.3f}"
        self._say(runner, f'train [{done:>{len(str(total))}}/{total}] {done / total:4.0%}'
                          f'{loss}  {per_step:.2f} s/step  eta {_clock(per_step * (total - done))}')

    # ------------------------------------------------------------------ evaluation

    def _after_phase_iter(self, runner, name: str, loop, batch_idx: int) -> None:
        try:
            total = len(loop.dataloader)
        except TypeError:
            return
        done = batch_idx + 1
        if done % self._every(total) and done != total:
            return
        task = getattr(loop.dataloader, 'label', None) or getattr(loop.dataloader, 'current', None)
        if task is not None and getattr(loop, 'shared_images', False) is not True:
            name = f'{name} {task}'
        per_batch = (time.perf_counter() - self._part_start) / done
        self._say(runner, f'{name} [{done}/{total} batches] {done / total:4.0%}  '
                          f'eta {_clock(per_batch * (total - done))}')

    def _after_phase(self, runner, name: str) -> None:
        self._say(runner, f'{name}: done in {time.perf_counter() - self._phase_start:.0f} s')

    def before_val_epoch(self, runner) -> None:
        self._phase_start = self._part_start = time.perf_counter()

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if batch_idx == 0:  # a task's own loader starts (tasks evaluated one after another)
            self._part_start = time.perf_counter()

    # a test is timed as an evaluation is; only the words and the loop differ
    before_test_epoch = before_val_epoch
    before_test_iter = before_val_iter

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._after_phase_iter(runner, 'evaluate', runner.val_loop, batch_idx)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._after_phase_iter(runner, 'test', runner.test_loop, batch_idx)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._after_phase(runner, 'evaluate')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._after_phase(runner, 'test')
