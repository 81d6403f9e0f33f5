"""The ``up2`` command line: train, test, infer, plugins, registry, data.

``up2 train`` and ``up2 test`` drive MMEngine's Runner on a config (a path, or the name of a
packaged config); ``up2 plugins`` and ``up2 registry`` show what the plugins contributed;
``up2 data shapes`` writes the embedded Shapes dataset; ``up2 merge`` interpolates a base
checkpoint and a finetune of it; ``up2 compare`` puts runs side by side.

Errors a user can fix (a missing config, an unknown key or registry name, a malformed override, a
plugin that failed under ``UP2_STRICT_PLUGINS=1``, unreadable data) print one ``up2: error:`` line
and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from up2core.cli import compare, data, demo, export, infer, merge, plugins, registry, test, train
from up2core.cli._common import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    MAIN_JOB_CONFIG,
    _build_runner,
    _fail,
    _user_error_types,
)

#: the commands, one module each (``up2core/cli/<command>.py``: its ``add_parser`` and ``cmd_*``)
COMMANDS = (train, test, infer, export, merge, compare, demo, plugins, registry, data)


def build_parser(with_plugin_options: bool = False) -> argparse.ArgumentParser:
    """The ``up2`` parser; ``with_plugin_options`` adds the options plugins give ``up2 infer``
    (that loads the plugins, so only an ``infer`` command line asks for it)."""
    from up2core import __version__

    parser = argparse.ArgumentParser(
        prog='up2', description='UP2: Uni-Perceiver v2, one generalist model for vision and '
        'vision-language tasks, as a core plus task plugins.')
    parser.add_argument('--version', action='version', version=f'up2 {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for command in COMMANDS:
        if command is infer:
            command.add_parser(sub, with_plugin_options=with_plugin_options)
        else:
            command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``up2`` command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(with_plugin_options=argv[:1] == ['infer']).parse_args(argv)
        if getattr(args, 'verbose', False):
            from up2core.engine.console import VERBOSE_ENV

            os.environ[VERBOSE_ENV] = '1'
        return args.func(args)
    except _user_error_types() as exc:
        return _fail(str(exc))
    except KeyError as exc:
        from up2core.registry import explain_missing

        message = explain_missing(exc)
        if message is None:
            raise
        return _fail(message)


#: names of the one-file ``up2core.cli`` (until 2026-12) and the module of the package they
#: moved to: ``up2core.cli.cmd_train`` still works, with a DeprecationWarning
_MOVED = {'cmd_train': train, 'cmd_test': test, 'cmd_infer': infer, 'cmd_export': export,
          'cmd_demo': demo, 'cmd_plugins': plugins, 'cmd_registry': registry,
          'cmd_data_shapes': data, 'cmd_data_check': data, 'cmd_data_stats': data,
          'cmd_data_browse': data, 'cmd_data_example': data}


def __getattr__(name: str):
    if name in _MOVED:
        module = _MOVED[name]
        warnings.warn(f'up2core.cli.{name} moved to {module.__name__}.{name}; the old name '
                      f'goes in UP2 2.0', DeprecationWarning, stacklevel=2)
        return getattr(module, name)
    raise AttributeError(f"module 'up2core.cli' has no attribute '{name}'")


__all__ = ['COMMANDS', 'EXIT_PARTIAL', 'EXIT_USAGE', 'MAIN_JOB_CONFIG', 'build_parser', 'main',
           '_build_runner']
