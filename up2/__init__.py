"""The ``up2`` distribution's own package: its packaged configs and mim tools.

The library is :mod:`up2core` (core) plus one package per task plugin (``up2_classification``...).
This package only ships ``.mim/configs`` and ``.mim/tools`` (links to the repository's ``configs/``
and ``tools/``), where both ``up2 train NAME`` and ``mim train up2 NAME`` find them, and hands the
config folder to the core through the same plugin hook a third-party task would use.
"""

from pathlib import Path

from up2core import __version__, list_plugins, list_tasks
from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.3'  # the UP2 plugin API this plugin is written for

CONFIG_DIR = Path(__file__).resolve().parent / '.mim' / 'configs'


@hookimpl
def up2_config_dirs() -> list[str]:
    return [str(CONFIG_DIR)]


__all__ = ['CONFIG_DIR', '__version__', 'list_plugins', 'list_tasks']
