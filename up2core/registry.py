"""UP2's registries: children of MMEngine's roots under the scope ``up2core``, plus ``TASKS``.

Every registry here is a child of the MMEngine root of the same kind, so a config with
``default_scope = 'up2core'`` resolves UP2 names first, then MMEngine's, and ``mmdet.X`` names
through MMEngine's scope lookup.  ``TASKS`` is new: it holds the Task classes that task plugins
contribute (see :mod:`up2core.task`).

Two things set these registries apart from plain :class:`mmengine.registry.Registry`:

* **Lazy plugins.**  The first lookup in any of them loads the task plugins (entry-point group
  ``up2.plugins``), so ``TASKS.get('classification')`` works in a fresh interpreter with no set-up
  call.
* **Owners.**  Each registered name remembers which plugin (or ``up2core``) registered it, so two
  plugins that claim the same name get an error that names both, instead of MMEngine's message that
  names only a module.

Examples:
    >>> from up2core.registry import TASKS, MODELS
    >>> 'classification' in TASKS  # doctest: +SKIP
    True
    >>> MODELS.get('mmdet.ResNet')  # doctest: +SKIP
    <class 'mmdet.models.backbones.resnet.ResNet'>
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterator

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'up2core'
CORE_OWNER = 'up2core'

# Who is registering right now: the plugin manager sets this while it imports and calls a plugin.
_current_owner: str = CORE_OWNER


# Called when any registry is first searched.  up2core.plugin adds its plugin loader here when
# it is imported (up2core/__init__.py imports it), so that this module never imports the plugin
# machinery: imports go one way, plugin -> registry.
_BEFORE_LOOKUP: list[Callable[[], None]] = []


def before_first_lookup(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` whenever a registry loads its locations (once per registry)."""
    if hook not in _BEFORE_LOOKUP:
        _BEFORE_LOOKUP.append(hook)
    return hook


class UnknownNameError(KeyError):
    """A name was looked up that no registry in reach holds."""

    def __str__(self) -> str:
        return str(self.args[0])


class RegistryConflictError(KeyError):
    """Two owners (plugins, or a plugin and the core) registered the same name in one registry."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


@contextlib.contextmanager
def registering_as(owner: str) -> Iterator[None]:
    """Attribute every registration made inside the block to ``owner`` (a plugin name)."""
    global _current_owner
    previous, _current_owner = _current_owner, owner
    try:
        yield
    finally:
        _current_owner = previous


class Up2Registry(Registry):
    """An MMEngine :class:`~mmengine.registry.Registry` that loads plugins lazily and knows owners."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.owners: dict[str, str] = {}

    def import_from_location(self) -> None:
        super().import_from_location()
        for hook in _BEFORE_LOOKUP:
            hook()

    def _register_module(self, module, module_name=None, force: bool = False) -> None:
        names = [module_name] if isinstance(module_name, str) else module_name
        names = names or [module.__name__]
        for name in names:
            owner = self.owners.get(name)
            existing = self._module_dict.get(name)
            if existing is not None and owner == _current_owner and \
                    _qualname(existing) == _qualname(module):
                force = True  # the same plugin registering the same class again (a reload)
            if not force and existing is not None and owner is not None:
                raise RegistryConflictError(
                    f"'{name}' is registered twice in the {self.scope}::{self.name} registry: by "
                    f"'{owner}' ({self._module_dict[name].__module__}) and by '{_current_owner}' "
                    f"({module.__module__}). Uninstall one of them, or block one with "
                    f"UP2_DISABLE_PLUGINS=<plugin name>.")
        super()._register_module(module, module_name, force)
        for name in names:
            self.owners[name] = _current_owner

    def require(self, key: str) -> type:
        """Like :meth:`get`, but a missing name raises a KeyError that lists close matches."""
        obj = self.get(key)
        if obj is None:
            raise UnknownNameError(missing_name_message(self, key))
        return obj

    def forget(self, names: list[str]) -> None:
        """Remove names (used to roll back a plugin that failed half-way through registering)."""
        for name in names:
            self._module_dict.pop(name, None)
            self.owners.pop(name, None)


def _qualname(obj) -> str:
    return f'{getattr(obj, "__module__", "")}.{getattr(obj, "__qualname__", repr(obj))}'


def _child(name: str, parent: Registry, locations: tuple[str, ...] = ()) -> Up2Registry:
    return Up2Registry(name, parent=parent, scope=SCOPE, locations=list(locations))


# Runner components
RUNNERS = _child('runner', MMENGINE_RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor', MMENGINE_RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', MMENGINE_LOOPS, ('up2core.engine',))
HOOKS = _child('hook', MMENGINE_HOOKS, ('up2core.engine', 'up2core.apis.predictions'))
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS)
# Data
DATASETS = _child('dataset', MMENGINE_DATASETS, ('up2core.data', 'up2core.data.captions',
                                               'up2core.data.coco'))
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS)
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, ('up2core.data', 'up2core.data.captions'))
# Models
MODELS = _child('model', MMENGINE_MODELS, ('up2core.models',))
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS)
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS)
# Optimisation
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, ('up2core.optim',))
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, ('up2core.optim',))
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS)
# Evaluation and visualisation
METRICS = _child('metric', MMENGINE_METRICS, ('up2core.evaluation',))
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR)
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS)
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS)
INFERENCERS = _child('inferencer', MMENGINE_INFERENCERS)
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS)

#: Task classes (one per task: classification, detection, ...).  New in UP2: MMEngine has no
#: such registry, so this one is a root of its own.
TASKS = Up2Registry('task', scope=SCOPE)

#: Targets in image coordinates that UP2's geometric transforms move with their image, by the
#: result key they travel under (:mod:`up2core.data.geometry`).  A root of its own, as TASKS.
GEOMETRIC_TARGETS = Up2Registry('geometric target', scope=SCOPE)

#: Every UP2 registry by the short name the CLI accepts (``up2 registry datasets``).
REGISTRIES: dict[str, Up2Registry] = {
    'tasks': TASKS,
    'geometric_targets': GEOMETRIC_TARGETS,
    'models': MODELS,
    'datasets': DATASETS,
    'transforms': TRANSFORMS,
    'metrics': METRICS,
    'evaluator': EVALUATOR,
    'optimizers': OPTIMIZERS,
    'optim_wrappers': OPTIM_WRAPPERS,
    'optim_wrapper_constructors': OPTIM_WRAPPER_CONSTRUCTORS,
    'param_schedulers': PARAM_SCHEDULERS,
    'loops': LOOPS,
    'hooks': HOOKS,
    'runners': RUNNERS,
    'runner_constructors': RUNNER_CONSTRUCTORS,
    'log_processors': LOG_PROCESSORS,
    'data_samplers': DATA_SAMPLERS,
    'model_wrappers': MODEL_WRAPPERS,
    'weight_initializers': WEIGHT_INITIALIZERS,
    'task_utils': TASK_UTILS,
    'visualizers': VISUALIZERS,
    'vis_backends': VISBACKENDS,
    'inferencers': INFERENCERS,
    'functions': FUNCTIONS,
}


def registry_by_name(kind: str) -> Up2Registry:
    """Return the UP2 registry called ``kind`` (``'tasks'``, ``'datasets'``, ``'dataset'``...).

    Raises:
        KeyError: naming the registries that exist, closest first.
    """
    key = kind.lower().replace('-', '_')
    if key in REGISTRIES:
        return REGISTRIES[key]
    for reg in REGISTRIES.values():  # also accept MMEngine's singular names ('dataset')
        if reg.name.replace(' ', '_') == key:
            return reg
    close = difflib.get_close_matches(key, list(REGISTRIES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    raise KeyError(f"No registry called '{kind}'.{hint} Registries: {', '.join(REGISTRIES)}")


def all_names(registry: Registry) -> list[str]:
    """Names visible from ``registry``: its own, then its parents' (MMEngine's) ones."""
    names: list[str] = []
    reg: Registry | None = registry
    while reg is not None:
        names.extend(reg.module_dict)
        reg = reg.parent
    return names


def close_matches(registry: Registry, key: str, n: int = 5) -> list[str]:
    """Names in ``registry`` (and its parents, and mmdet's sibling) that look like ``key``."""
    candidates = set(all_names(registry))
    root = registry._get_root_registry()
    for child in root.children.values():  # e.g. mmdet::model next to up2core::model
        if child is registry:
            continue
        candidates.update(f'{child.scope}.{n}' for n in child.module_dict)
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(key.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def missing_name_message(registry: Registry, key: str) -> str:
    """The message for an unknown ``key``: where it was looked up, and what it may have meant."""
    close = close_matches(registry, key)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    return (f"'{key}' is not in the {registry.scope}::{registry.name} registry.{hint} "
            f"List the names with `up2 registry {_short_name(registry)}`; names from mmdet need "
            f"the prefix 'mmdet.' (e.g. 'mmdet.ResNet'); a plugin that failed to load is listed by "
            f"`up2 plugins`.")


def _short_name(registry: Registry) -> str:
    for short, reg in REGISTRIES.items():
        if reg.name == registry.name:
            return short
    return registry.name


_MMENGINE_MISSING = re.compile(r"^'?(?P<key>\S+) is not in the (?:(?P<scope>[\w.]+)::)?"
                               r"(?P<name>[\w ]+?) registry\.")


def explain_missing(exc: BaseException) -> str | None:
    """Rewrite MMEngine's "X is not in the Y registry" KeyError with close matches, else None."""
    match = _MMENGINE_MISSING.match(str(exc.args[0]) if exc.args else '')
    if not match:
        return None
    name = match['name']
    registry = next((r for r in REGISTRIES.values() if r.name == name), None)
    if registry is None:
        return None
    return missing_name_message(registry, match['key'])
