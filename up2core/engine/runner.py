"""The Runner ``up2 train`` and ``up2 test`` build: MMEngine's, with a short console.

MMEngine's :class:`~mmengine.runner.Runner` as it is, except its logger: the console handler
shows warnings and errors only (the log file keeps everything: config, environment, hooks,
per-step losses); see :mod:`up2core.engine.console`.  A config that names its own
``runner_type`` gets that Runner instead.

Examples:
    >>> runner = UP2Runner.from_cfg(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

from mmengine.runner import Runner

from up2core.engine.console import quiet_console
from up2core.registry import RUNNERS


@RUNNERS.register_module()
class UP2Runner(Runner):
    """:class:`~mmengine.runner.Runner` with :func:`~up2core.engine.console.quiet_console`."""

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        quiet_console(logger)
        return logger
