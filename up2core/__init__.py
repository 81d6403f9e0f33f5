"""UP2: Uni-Perceiver v2 as a small core plus task plugins.

The core (this package) knows no task.  Tasks arrive as plugins (entry-point group
``up2.plugins``) that register their Task, datasets and metrics in :mod:`up2core.registry`.

Examples:
    >>> import up2core
    >>> up2core.list_tasks()  # doctest: +SKIP
    ['captioning', 'classification', 'detection', 'retrieval', 'segmentation']
"""

__version__ = '0.1.0'

# Installs the plugin loader that every registry runs on its first lookup (up2core.registry itself
# never imports up2core.plugin).
from up2core import plugin as _plugin  # noqa: E402,F401
from up2core.config import install_package_scope as _install_package_scope  # noqa: E402
from up2core.deprecation import PLUGIN_API_VERSION  # noqa: E402  (the task-plugin API)

# `_base_ = ['up2::_base_/...']` works in any config once up2core is imported.
_install_package_scope()


def list_tasks(pattern: str = '*') -> list[str]:
    """Names of the registered tasks matching a shell-style ``pattern``, sorted.

    Like ``timm.list_models``: plugins are loaded on first use.
    """
    import fnmatch

    from up2core.registry import TASKS

    TASKS.import_from_location()
    return sorted(n for n in TASKS.module_dict if fnmatch.fnmatch(n, pattern))


def list_plugins():
    """Every discovered task plugin with its status (see :class:`up2core.plugin.PluginInfo`)."""
    from up2core.plugin import list_plugins as _list

    return _list()


__all__ = ['PLUGIN_API_VERSION', '__version__', 'list_tasks', 'list_plugins']
