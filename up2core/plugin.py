"""Task plugins: the pluggy hook specifications, the ``hookimpl`` marker and the plugin manager.

A task plugin is any importable object (usually a module) advertised under the entry-point group
``up2.plugins``.  UP2's own tasks are declared in UP2's ``pyproject.toml`` exactly like a
third-party plugin would declare them; the core never imports a plugin by name.

A minimal plugin package::

    # my_task/__init__.py
    from up2core.plugin import hookimpl

    @hookimpl
    def up2_register(registry):
        from . import task, dataset, metric  # their @registry.X.register_module() decorators run

    # pyproject.toml
    [project.entry-points."up2.plugins"]
    my_task = "my_task"

Loading rules:

* Plugins load lazily, the first time any UP2 registry is searched (or on :func:`load_plugins`).
* A plugin that fails to import, does not validate against the hook specs, or raises while
  registering is rolled back, reported (name, distribution, error) and skipped; the others load.
  ``UP2_STRICT_PLUGINS=1`` turns that into an exception.
* ``UP2_DISABLE_PLUGINS=a,b`` skips plugins by entry-point name.
* Two plugins registering the same name in one registry is always an error that names both
  (:class:`~up2core.registry.RegistryConflictError`): silently picking one would train the wrong task.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from up2core import registry as _registry
from up2core.deprecation import api_compatibility

PROJECT = 'up2'
ENTRY_POINT_GROUP = 'up2.plugins'
STRICT_ENV = 'UP2_STRICT_PLUGINS'
#: The module attribute through which a plugin declares the plugin API it was written for.
API_ATTRIBUTE = 'UP2_PLUGIN_API'
DISABLE_ENV = 'UP2_DISABLE_PLUGINS'

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginLoadError(RuntimeError):
    """A plugin failed to load while ``UP2_STRICT_PLUGINS=1`` was set."""


class PluginWarning(UserWarning):
    """A plugin failed to load and was skipped."""


class Up2HookSpecs:
    """The hooks a task plugin may implement.  All are optional."""

    @hookspec
    def up2_register(self, registry: Any) -> None:
        """Register the plugin's classes in UP2's registries.

        Called once per plugin, right after it is imported.  ``registry`` is the
        :mod:`up2core.registry` module: register with ``registry.TASKS.register_module()``,
        ``registry.DATASETS``, ``registry.METRICS``, ``registry.TRANSFORMS``, ``registry.MODELS``...
        Importing submodules whose classes carry those decorators is the usual body.
        """

    @hookspec
    def up2_config_dirs(self) -> list[str]:
        """Folders of runnable configs the plugin ships.

        ``up2 train NAME`` looks a config name up in these folders after UP2's own, so a plugin's
        recipes run by name once it is installed; other configs inherit them through the
        plugin's own scope (``_base_ = ['<plugin name>::<path in the folder>']``).
        """

    @hookspec
    def up2_infer_arguments(self, parser: Any) -> None:
        """Add the plugin's own options to ``up2 infer`` (an ``argparse`` parser or group).

        Each option's value (when given) reaches every task's ``Task.infer`` as the keyword
        argument named by its ``dest``, and counts for ``Task.infer_requires``; e.g.
        ``parser.add_argument('--phrases', nargs='+', help='grounding: phrases to locate')``
        arrives as ``infer(..., phrases=[...])``.  Options other plugins or UP2 already define
        are an error naming both.
        """


@dataclass
class PluginInfo:
    """What is known about one plugin after loading: shown by ``up2 plugins``."""

    name: str
    value: str
    distribution: str | None = None
    version: str | None = None
    status: str = 'pending'  # 'loaded' | 'failed' | 'disabled'
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    api_version: str | None = None  # UP2_PLUGIN_API the plugin declares
    api_status: str = 'undeclared'  # see up2core.deprecation.api_compatibility
    api_note: str = ''

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != 'traceback'}


def _truthy(value: str | None) -> bool:
    return (value or '').strip().lower() in {'1', 'true', 'yes', 'on'}


def _snapshot() -> dict[str, set[str]]:
    return {kind: set(reg.module_dict) for kind, reg in _registry.REGISTRIES.items()}


def _diff(before: dict[str, set[str]]) -> dict[str, list[str]]:
    after = _snapshot()
    return {kind: sorted(after[kind] - before[kind])
            for kind in after if after[kind] - before[kind]}


class Up2PluginManager(pluggy.PluginManager):
    """A :class:`pluggy.PluginManager` that loads ``up2.plugins`` entry points one by one."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(Up2HookSpecs)
        self.infos: dict[str, PluginInfo] = {}

    def load_entry_points(self, strict: bool | None = None,
                          disabled: set[str] | None = None) -> None:
        """Discover and load every plugin of the ``up2.plugins`` group, in name order."""
        strict = _truthy(os.environ.get(STRICT_ENV)) if strict is None else strict
        if disabled is None:
            disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, '').split(',') if n.strip()}
        eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda ep: ep.name)
        for ep in eps:
            dist = getattr(ep, 'dist', None)
            info = PluginInfo(name=ep.name, value=ep.value,
                              distribution=dist.name if dist else None,
                              version=dist.version if dist else None)
            if ep.name in self.infos:
                other = self.infos[ep.name]
                if (other.distribution, other.value) == (info.distribution, info.value):
                    continue  # the same distribution seen twice on sys.path
                info.status = 'failed'
                info.error = (f"plugin name '{ep.name}' is already taken by distribution "
                              f"'{other.distribution}'; rename one of the entry points")
                self._fail(info, strict)
                continue
            self.infos[ep.name] = info
            if ep.name in disabled:
                info.status = 'disabled'
                continue
            self._load_one(info, ep.load, strict)

    def load_object(self, name: str, plugin: Any, strict: bool = True) -> PluginInfo:
        """Register an already-imported plugin object under ``name`` (for tests and notebooks)."""
        info = PluginInfo(name=name, value=getattr(plugin, '__name__', repr(plugin)))
        self.infos[name] = info
        self._load_one(info, lambda: plugin, strict)
        return info

    def _load_one(self, info: PluginInfo, load: Any, strict: bool) -> None:
        before = _snapshot()
        try:
            with _registry.registering_as(info.name):
                plugin = load()  # import-time decorators register here
                self._check_api(info, plugin)
                self.register(plugin, name=info.name)
                try:
                    self.check_pending()
                except pluggy.PluginValidationError:
                    self.unregister(name=info.name)
                    raise
                info.hooks = sorted(impl_name for impl_name, caller in self.hook.__dict__.items()
                                    if any(impl.plugin_name == info.name
                                           for impl in caller.get_hookimpls()))
                for impl in self.hook.up2_register.get_hookimpls():
                    if impl.plugin_name == info.name:
                        impl.function(**{arg: _registry for arg in impl.argnames})
        except _registry.RegistryConflictError:
            self._roll_back(info, before)
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; report and go on
            self._roll_back(info, before)
            info.status = 'failed'
            info.error = f'{type(exc).__name__}: {exc}'
            info.traceback = traceback.format_exc()
            self._fail(info, strict)
            return
        info.registered = _diff(before)
        info.status = 'loaded'

    @staticmethod
    def _check_api(info: PluginInfo, plugin: Any) -> None:
        """Record the plugin API version the plugin declares; warn when it does not match."""
        declared = getattr(plugin, API_ATTRIBUTE, None)
        info.api_version = None if declared is None else str(declared)
        info.api_status, info.api_note = api_compatibility(info.api_version)
        if info.api_status in ('incompatible', 'newer', 'invalid'):
            warnings.warn(f"UP2 plugin '{info.name}' {info.api_note}", PluginWarning,
                          stacklevel=4)

    def _roll_back(self, info: PluginInfo, before: dict[str, set[str]]) -> None:
        for kind, names in _diff(before).items():
            _registry.REGISTRIES[kind].forget(names)
        if self.get_plugin(info.name) is not None:
            self.unregister(name=info.name)

    def _fail(self, info: PluginInfo, strict: bool) -> None:
        where = f" from distribution '{info.distribution} {info.version}'" if info.distribution else ''
        message = (f"UP2 plugin '{info.name}' ({info.value}){where} failed to load and was "
                   f"skipped: {info.error}. Fix or uninstall it, or block it with "
                   f"{DISABLE_ENV}={info.name}.")
        if strict:
            raise PluginLoadError(message.replace('and was skipped', f'({STRICT_ENV}=1)'))
        warnings.warn(message, PluginWarning, stacklevel=2)

    def config_dirs(self, plugin: str | None = None) -> list[str]:
        """Config folders contributed by loaded plugins (hook ``up2_config_dirs``), by plugin
        name; only those of ``plugin`` when it is given."""
        impls = sorted(self.hook.up2_config_dirs.get_hookimpls(), key=lambda i: i.plugin_name)
        return [str(d) for impl in impls for d in (impl.function() or [])
                if plugin is None or impl.plugin_name == plugin]


_manager: Up2PluginManager | None = None
_lock = threading.RLock()


def get_plugin_manager() -> Up2PluginManager:
    """The process-wide plugin manager, with every plugin loaded."""
    ensure_plugins_loaded()
    assert _manager is not None
    return _manager


def ensure_plugins_loaded() -> None:
    """Load the plugins once per process.  Re-entrant: a plugin may look registries up."""
    global _manager
    if _manager is not None:
        return
    with _lock:
        if _manager is not None:
            return
        manager = Up2PluginManager()
        _manager = manager  # set first, so lookups made by plugins while loading do not recurse
        try:
            # The core's own modules register first, so their names are owned by the core even
            # when a plugin happens to import them.
            for reg in _registry.REGISTRIES.values():
                super(_registry.Up2Registry, reg).import_from_location()
            manager.load_entry_points()
        except BaseException:
            _forget(manager)  # leave no half-loaded set behind: the next lookup starts clean
            _manager = None
            raise


_registry.before_first_lookup(ensure_plugins_loaded)


def _forget(manager: Up2PluginManager) -> None:
    for info in manager.infos.values():
        for kind, names in info.registered.items():
            _registry.REGISTRIES[kind].forget(names)


def load_plugins(force: bool = False) -> Up2PluginManager:
    """Load the plugins now (``force=True``: forget what was loaded and discover again)."""
    global _manager
    if force and _manager is not None:
        with _lock:
            _forget(_manager)
            _manager = None
    return get_plugin_manager()


def list_plugins() -> list[PluginInfo]:
    """Every discovered plugin (loaded, failed or disabled), in name order."""
    return sorted(get_plugin_manager().infos.values(), key=lambda i: i.name)
