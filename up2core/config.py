"""Finding and loading UP2 configs, with errors that say what to fix.

A config is named either by a path or by the stem of a packaged config (``up2_tiny_shapes``):
packaged configs are found in the folders that plugins return from their ``up2_config_dirs`` hook;
UP2's own (``up2/.mim/configs``, where ``mim`` also reads them) arrive the same way.

``--cfg-options`` overrides must name keys that exist in the config (a typo such as
``train_cfg.max_iter=10`` would otherwise be silently ignored by the Runner); prefix a key with
``+`` to add a new one on purpose, as in Hydra: ``+model.extra=1``.  Overriding a top-level
``*data_root`` (``shapes_data_root``, ``coco_data_root``...) moves every path under it
(:func:`move_data_root`).  Changing ``train_cfg.max_iters`` (or the top-level ``max_iters``)
stretches the iteration schedule to the new length (:func:`follow_max_iters`).

Configs outside the checkout (a plugin's, your own) inherit UP2's base configs through the
``up2::`` package scope (and a plugin's configs through the plugin's name, ``grounding::x.py``), which MMEngine resolves once :mod:`up2core` is imported (``up2 train``,
``up2 test`` and ``tools/*.py`` import it first)::

    _base_ = ['up2::_base_/models/up2_tiny.py', 'up2::_base_/datasets/shapes_classification.py']

Examples:
    >>> from up2core.config import load_config
    >>> cfg = load_config('up2_tiny_shapes', ['train_cfg.max_iters=10'])  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import difflib
import os
from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict, DictAction


class ConfigError(ValueError):
    """A config, or an override of one, cannot be used as given."""


PACKAGE_SCOPE = 'up2'
"""``up2::path`` in a ``_base_`` list names ``path`` under UP2's packaged config folder."""


def packaged_config_root() -> Path:
    """UP2's own config folder (``up2/.mim/configs``), found without importing ``up2``."""
    import importlib.util

    spec = importlib.util.find_spec('up2')
    if spec is None or spec.origin is None:
        raise ConfigError("The 'up2' package is not importable, so 'up2::' base configs cannot "
                          "be found; install UP2 (`pip install -e .` in its checkout).")
    return Path(spec.origin).resolve().parent / '.mim' / 'configs'


def install_package_scope() -> None:
    """Teach MMEngine's ``Config`` the ``up2::`` base-config scope (idempotent).

    MMEngine resolves ``pkg::path`` only for the OpenMMLab packages in its own table, through
    ``pkg_resources`` (gone from setuptools >= 81) and an ``.mim/model-index.yml``, and then
    stamps ``_scope_='pkg'`` on every inherited dict with a ``type``.  UP2's registries live under
    the scope ``up2core``, so the stamp must be ``up2core``, not ``up2``: this wraps
    ``Config._get_cfg_path`` to answer ``up2::`` itself and leaves every other scope to MMEngine.
    """
    original = Config.__dict__['_get_cfg_path'].__func__
    if getattr(original, '_up2_scope', False):
        return

    def _get_cfg_path(cfg_path: str, filename: str):
        package, sep, relative = cfg_path.partition('::')
        if not sep:
            return original(cfg_path, filename)
        if package == PACKAGE_SCOPE:
            roots, owner = [packaged_config_root()], "UP2's configs"
        else:
            roots = plugin_config_roots(package)
            if roots is None:  # not a UP2 plugin: an OpenMMLab package (mmdet::...)
                return original(cfg_path, filename)
            owner = f"the configs of plugin '{package}'"
        for root in roots:
            if (root / relative).is_file():
                from up2core.registry import SCOPE

                return str(root / relative), SCOPE
        known = [str(p.relative_to(root)) for root in roots for p in root.rglob('*.py')]
        close = difflib.get_close_matches(relative, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(f'{package}::{c}' for c in close)}?" if close else ''
        raise FileNotFoundError(f"{filename}: base config '{cfg_path}' does not exist in "
                                f"{owner} ({', '.join(map(str, roots)) or 'none'}).{hint}")

    _get_cfg_path._up2_scope = True  # type: ignore[attr-defined]
    Config._get_cfg_path = staticmethod(_get_cfg_path)


def plugin_config_roots(scope: str) -> list[Path] | None:
    """Config folders of the UP2 plugin named ``scope`` (its entry-point name, or the top-level
    module it points to: ``grounding`` or ``up2_grounding``), or None when no plugin has that
    name.  A plugin's configs are inheritable as ``_base_ = ['<scope>::<path>']``."""
    from up2core.plugin import get_plugin_manager

    manager = get_plugin_manager()
    for info in manager.infos.values():
        if info.status == 'loaded' and scope in (info.name, info.value.split(':')[0].split('.')[0]):
            return [Path(d) for d in manager.config_dirs(info.name)]
    return None


def _drop_default_scope_stamps(cfg: Config) -> None:
    """Remove the ``_scope_='up2core'`` that ``up2::`` inheritance stamps on every dict with a
    ``type``, when the config's default scope is ``up2core`` anyway.

    The stamp is redundant there, and harmful in the dicts that are not built by a registry:
    MMEngine passes it on as a keyword to ``collate_fn`` functions, and UP2 to a task's
    ``__init__`` or to ``prepare=dict(type='shapes', ...)``.
    """
    from up2core.registry import SCOPE

    if cfg.get('default_scope') != SCOPE:
        return

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return ConfigDict({k: clean(v) for k, v in node.items()
                               if not (k == '_scope_' and v == SCOPE)})
        if isinstance(node, (list, tuple)):
            return type(node)(clean(v) for v in node)
        return node

    for key in list(cfg.keys()):
        value = cfg[key]
        if isinstance(value, (dict, list, tuple)):
            # ConfigDict merges on assignment: replace the value through the dict itself
            dict.__setitem__(cfg._cfg_dict, key, clean(value))


def config_dirs() -> list[Path]:
    """Folders searched for named configs, in plugin-name order."""
    from up2core.plugin import get_plugin_manager

    return [Path(d) for d in get_plugin_manager().config_dirs() if Path(d).is_dir()]


def list_configs() -> dict[str, Path]:
    """Runnable configs by name (``_base_`` fragments excluded)."""
    found: dict[str, Path] = {}
    for root in config_dirs():
        for path in sorted(root.rglob('*.py')):
            if '_base_' not in path.parts and not path.name.startswith('_'):
                found.setdefault(path.stem, path)
    return found


def find_config(name_or_path: str | os.PathLike) -> Path:
    """Resolve a config path or packaged config name to a file.

    Raises:
        ConfigError: the file does not exist; the message lists the closest packaged names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    configs = list_configs()
    stem = path.name[:-3] if path.name.endswith('.py') else path.name
    if stem in configs and (path.parent == Path('.') or not path.parent.exists()):
        return configs[stem]
    close = difflib.get_close_matches(stem, list(configs), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ''
    raise ConfigError(
        f"Config '{name_or_path}' not found: it is neither a file nor a packaged config name.{hint} "
        f"Packaged configs: {', '.join(sorted(configs)) or '(none)'} (list them with "
        f"`up2 registry configs`).")


def parse_cfg_options(options: list[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` strings the way MMEngine's ``DictAction`` does, but with clear errors."""
    parsed: dict[str, Any] = {}
    for option in options or []:
        key, sep, value = option.partition('=')
        if not sep or not key.strip():
            raise ConfigError(f"Malformed --cfg-options item '{option}': expected KEY=VALUE, "
                              f"e.g. train_cfg.max_iters=100 or model.decoder.depth=2.")
        try:
            parsed[key.strip()] = _parse_call(value) if value.strip().startswith(('dict(', '{')) \
                else DictAction._parse_iterable(value)
        except (AssertionError, ValueError, SyntaxError, RecursionError) as exc:
            raise ConfigError(f"Malformed value in --cfg-options item '{option}': {exc or ''}"
                              f" Brackets and quotes must balance, e.g. key=[1,2] or "
                              f"key=\"(1,2)\".") from None
    return parsed


def _parse_call(text: str) -> Any:
    """A value written in Python literal syntax that may contain ``dict(key=value)`` calls (the
    form configs use), without evaluating anything else."""
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == 'dict' and not node.args:
            return {kw.arg: value(kw.value) for kw in node.keywords if kw.arg is not None}
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise ValueError(f'`{ast.unparse(node)}` is not a literal; values may be numbers, '
                             f'strings, lists, tuples, dicts and dict(...)') from None

    return value(ast.parse(text.strip(), mode='eval').body)


def _has_key(cfg: Any, dotted: str) -> tuple[bool, str, list[str]]:
    """Whether ``dotted`` exists in ``cfg``; else the deepest existing prefix and its keys."""
    node, walked = (cfg.to_dict() if isinstance(cfg, Config) else cfg), []
    for part in dotted.split('.'):
        if isinstance(node, (dict, ConfigDict)) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            keys = list(node.keys()) if isinstance(node, (dict, ConfigDict)) else []
            return False, '.'.join(walked), keys
        walked.append(part)
    return True, dotted, []


def apply_cfg_options(cfg: Config, options: dict[str, Any], source: str = '--cfg-options') -> None:
    """Merge overrides into ``cfg``; unknown keys (without a ``+`` prefix) raise ConfigError."""
    merged: dict[str, Any] = {}
    for key, value in options.items():
        if key.startswith('+'):
            merged[key[1:]] = value
            continue
        exists, prefix, siblings = _has_key(cfg, key)
        if not exists:
            leaf = key[len(prefix):].lstrip('.').split('.')[0]
            close = difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(f'{prefix}.{c}'.lstrip('.') for c in close)}?" \
                if close else ''
            raise ConfigError(f"Unknown config key '{key}' in {source}.{hint} To add a new key "
                              f"on purpose, write it as '+{key}=...'.")
        merged[key] = value
    cfg.merge_from_dict(merged)


def load_config(name_or_path: str | os.PathLike, cfg_options: list[str] | dict | None = None,
                tasks: list[str] | str | None = None) -> Config:
    """Find, load and override a config (see the module docstring).

    ``tasks`` (``up2 train/test/infer --tasks a,b``) keeps only those tasks of the config
    (:func:`select_tasks`); tasks whose ``train_cfg.sampling_weights`` entry is 0 are dropped
    in any case (not built, not trained, not evaluated)."""
    path = find_config(name_or_path)
    try:
        cfg = Config.fromfile(str(path))
    except (SyntaxError, NameError, ImportError, FileNotFoundError, KeyError) as exc:
        raise ConfigError(f"Config '{path}' could not be loaded: {type(exc).__name__}: {exc}") \
            from exc
    _drop_default_scope_stamps(cfg)
    options = cfg_options if isinstance(cfg_options, dict) else parse_cfg_options(cfg_options)
    roots = {key: cfg[key] for key in options if _is_root(cfg, key)}
    old_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    if 'max_iters' in options and 'train_cfg.max_iters' not in options \
            and isinstance(cfg.get('max_iters'), int):
        options = {**options, 'train_cfg.max_iters': options['max_iters']}
    apply_cfg_options(cfg, options)
    for key, old in roots.items():
        move_data_root(cfg, old, cfg[key])
    new_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    if isinstance(old_iters, int) and isinstance(new_iters, int) and new_iters != old_iters \
            and not any(k.lstrip('+').startswith('param_scheduler') for k in options):
        follow_max_iters(cfg, old_iters, new_iters)
    if tasks:
        select_tasks(cfg, tasks.split(',') if isinstance(tasks, str) else tasks)
    weights = (cfg.get('train_cfg') or {}).get('sampling_weights') or {}
    zero = [name for name, weight in weights.items() if weight == 0]
    if zero:
        kept = [name for name in (cfg.get('model') or {}).get('tasks') or {} if name not in zero]
        select_tasks(cfg, kept, reason='sampling weight 0')
    return cfg


def select_tasks(cfg: Config, names: list[str], reason: str = '--tasks') -> list[str]:
    """Keep only the tasks ``names`` of a multi-task config; drop every other task's entry.

    A task lives in several places of a config: ``model.tasks``, one entry of each multi-task
    dataloader and evaluator, ``train_cfg.sampling_weights`` and the ``targets`` table.  This
    removes all of a dropped task's entries at once (what ``_delete_`` would do in five places),
    so an inherited config trains, evaluates or predicts a subset of its tasks.

    Returns:
        The tasks dropped.

    Raises:
        ConfigError: a name that is not a task of the config, or nothing left.
    """
    names = [n.strip() for n in names if n.strip()]
    have = list((cfg.get('model') or {}).get('tasks') or {})
    unknown = [n for n in names if n not in have]
    if unknown:
        raise ConfigError(f"{reason}: {', '.join(unknown)} is not a task of this config "
                          f"(model.tasks: {', '.join(have) or 'none'})")
    if not names:
        raise ConfigError(f'{reason}: no task left to run (the config has {", ".join(have)})')
    dropped = [n for n in have if n not in names]
    if not dropped:
        return []
    data = cfg.to_dict()

    def without(section: dict | None) -> dict | None:
        if not isinstance(section, dict):
            return section
        return {k: v for k, v in section.items() if k not in dropped}

    data['model']['tasks'] = without(data['model']['tasks'])
    for key in _LOADERS + _EVALUATORS:
        section = data.get(key)
        if isinstance(section, dict) and 'type' not in section and 'dataset' not in section:
            data[key] = without(section)
    for key in ('train_cfg',):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get('sampling_weights'), dict):
            section['sampling_weights'] = without(section['sampling_weights'])
    if isinstance(data.get('targets'), dict):
        data['targets'] = {k: v for k, v in data['targets'].items()
                           if k.split('/', 1)[0] not in dropped}
    for key, value in data.items():
        if key in ('model', 'targets') or key in _LOADERS + _EVALUATORS or key == 'train_cfg':
            dict.__setitem__(cfg._cfg_dict, key, ConfigDict(value) if isinstance(value, dict)
                             else value)
    note(f"{reason}: dropped task(s) {', '.join(dropped)}; running {', '.join(names)}")
    return dropped


def follow_max_iters(cfg: Config, old: int, new: int) -> list[str]:
    """Stretch an iteration-based schedule written for ``old`` iterations to ``new``.

    A shortened run (``--cfg-options train_cfg.max_iters=100``, or the top-level ``max_iters``
    of the packaged configs) would otherwise keep the schedule written for the full run and stop
    with the learning rate cut mid-decay.  Every ``begin``/``end`` of the ``param_scheduler``
    entries with ``by_epoch=False`` scales by ``new / old`` (a warm-up keeps its share of the
    run, the decay ends exactly at ``new``), and validation or checkpoint intervals equal to
    ``old`` become ``new``.  Overriding any ``param_scheduler`` key in the same options keeps the
    schedule as written (that is how a run is stopped early on purpose, to resume it later).

    Returns:
        What moved, one ``key: old -> new`` string each (also logged).
    """
    moved: list[str] = []

    def scaled(value: int) -> int:
        return value if value == 0 else max(1, round(value * new / old))

    schedulers = cfg.get('param_scheduler')
    entries = schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get('by_epoch', True):
            continue
        for key in ('begin', 'end'):
            value = entry.get(key)
            if isinstance(value, int) and value < 10 ** 9:  # mmengine's "until the end": INF
                entry[key] = new if value == old else scaled(value)
                if key == 'end' and isinstance(entry.get('begin'), int):
                    entry[key] = max(entry[key], entry['begin'] + 1)  # very short runs
                if entry[key] != value:
                    moved.append(f'param_scheduler.{index}.{key}: {value} -> {entry[key]}')
    for section, key in (('train_cfg', 'val_interval'), ('default_hooks.checkpoint', 'interval')):
        node = cfg
        for part in section.split('.'):
            node = node.get(part) if isinstance(node, (dict, Config)) else None
        if isinstance(node, dict) and node.get(key) == old:
            node[key] = new
            moved.append(f'{section}.{key}: {old} -> {new}')
    if moved:
        note(f'train_cfg.max_iters {old} -> {new}; the schedule follows: ' + ', '.join(moved))
    return moved


def note(message: str) -> None:
    """Tell the user what a config change did: one ``up2:`` line on the terminal (stderr), and
    the log; silent when the current logger is quieter than INFO (inference, whose output is
    its results)."""
    import logging
    import sys

    from mmengine.logging import MMLogger, print_log

    logger = MMLogger.get_current_instance()
    print_log(message, logger=logger, level=logging.DEBUG)
    if logger.level <= logging.INFO:
        print(f'up2: {message}', file=sys.stderr, flush=True)


def _is_root(cfg: Config, key: str) -> bool:
    return key.endswith('data_root') and '.' not in key and isinstance(cfg.get(key), str)


def move_data_root(cfg: Config, old: str, new: str) -> None:
    """Point every path under ``old`` (a top-level ``*data_root`` of the config) to ``new``.

    Base configs name one root per dataset family (``shapes_data_root``, ``coco_data_root``,
    ``imagenet_data_root``) and build every path of that family from it; Python resolves those
    when the file loads, so overriding the variable alone would move nothing.  Overriding it
    with ``--cfg-options shapes_data_root=/data/shapes`` moves every dataloader, evaluator
    annotation file and vocabulary file that lived under it.
    """
    old = old.rstrip('/')
    new = str(new).rstrip('/')

    def moved(value: Any) -> Any:
        if isinstance(value, str) and (value == old or value.startswith(old + '/')):
            return new + value[len(old):]
        if isinstance(value, (dict, ConfigDict)):
            return {k: moved(v) for k, v in value.items()}
        if isinstance(value, list):
            return [moved(v) for v in value]
        if isinstance(value, tuple):
            return tuple(moved(v) for v in value)
        return value

    cfg.merge_from_dict({key: moved(value) for key, value in cfg.to_dict().items()
                         if not key.startswith('_')}, allow_list_keys=False)


# Where a config names registered types: (dotted section, registry name). ``*`` matches every key
# of a dict or item of a list.
_TYPED_SECTIONS = (
    ('model.tasks.*', 'TASKS'),
    ('optim_wrapper', 'OPTIM_WRAPPERS'),
    ('optim_wrapper.optimizer', 'OPTIMIZERS'),
    ('param_scheduler.*', 'PARAM_SCHEDULERS'),
    ('param_scheduler', 'PARAM_SCHEDULERS'),
    ('train_cfg', 'LOOPS'), ('val_cfg', 'LOOPS'), ('test_cfg', 'LOOPS'),
    ('*_dataloader.*.dataset', 'DATASETS'),
    ('*_dataloader.*.dataset.pipeline.*', 'TRANSFORMS'),
    ('*_evaluator.*', 'METRICS'),
    ('*_evaluator.*.*', 'METRICS'),
    ('custom_hooks.*', 'HOOKS'),
)
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_EVALUATORS = ('val_evaluator', 'test_evaluator')


def _select(node: Any, parts: list[str], path: str = '') -> list[tuple[str, Any]]:
    """``(dotted path, value)`` of every node ``parts`` (with ``*`` wildcards) reaches."""
    if not parts:
        return [(path, node)]
    head, rest = parts[0], parts[1:]
    if isinstance(node, (dict, ConfigDict)):
        keys = [k for k in node if head == '*' or k == head or
                (head.startswith('*') and str(k).endswith(head[1:]))]
        return [hit for k in keys for hit in _select(node[k], rest, f'{path}.{k}'.lstrip('.'))]
    if isinstance(node, (list, tuple)) and head == '*':
        return [hit for i, v in enumerate(node) for hit in _select(v, rest, f'{path}.{i}')]
    return []


def _check_schedulers(data: dict) -> None:
    schedulers = data.get('param_scheduler')
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for index, scheduler in enumerate(schedulers or []):
        if not isinstance(scheduler, dict) or scheduler.get('by_epoch', True):
            continue
        begin, end = scheduler.get('begin', 0), scheduler.get('end')
        if isinstance(begin, int) and isinstance(end, int) and end <= begin:
            raise ConfigError(
                f'param_scheduler.{index} ({scheduler.get("type")}) ends at step {end}, not '
                f'after it begins at step {begin}: shift the schedule with '
                f'--cfg-options param_scheduler.{index}.begin=... param_scheduler.{index}.end=... '
                f'or train longer')


def check_config(cfg: Config) -> None:
    """Check what can be checked before a Runner is built (seconds, not a minute of set-up):

    * every registered type the config names exists (optimiser, schedulers, tasks, datasets,
      transforms, metrics, hooks, loops), with close matches when it does not;
    * every task a multi-task dataloader, evaluator or sampling weight names is in
      ``model.tasks``, and each dataloader's pipeline packs samples for its own task;
    * each learning-rate schedule by steps ends after it begins (``--cfg-options max_iters=20``
      on a config whose warm-up ends at step 50 would otherwise be MMEngine's traceback).

    Raises:
        ConfigError or UnknownNameError: naming the config key and the fix.
    """
    from up2core import registry

    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    _check_schedulers(data)
    for section, registry_name in _TYPED_SECTIONS:
        reg = getattr(registry, registry_name)
        for path, node in _select(data, section.split('.')):
            kind = node.get('type') if isinstance(node, dict) else None
            if isinstance(kind, str) and reg.get(kind) is None:
                raise registry.UnknownNameError(
                    f'{path}.type: {registry.missing_name_message(reg, kind)}')
    tasks = set((data.get('model') or {}).get('tasks') or {})
    if not tasks:
        return
    named = [(f'{section}.{name}', name) for section in _LOADERS + _EVALUATORS
             if isinstance(data.get(section), dict) and 'type' not in data[section]
             and 'dataset' not in data[section] for name in data[section]]
    weights = (data.get('train_cfg') or {}).get('sampling_weights') or {}
    named += [(f'train_cfg.sampling_weights.{name}', name) for name in weights]
    for key, name in named:
        if name not in tasks:
            close = difflib.get_close_matches(name, sorted(tasks), n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ''
            raise ConfigError(f"{key}: '{name}' is not a task of this model (model.tasks: "
                              f"{', '.join(sorted(tasks))}).{hint} Add it to model.tasks or "
                              f"rename the key.")
    for section in _LOADERS:
        for path, step in _select(data, [section, '*', 'dataset', 'pipeline', '*']):
            if isinstance(step, dict) and step.get('type') == 'PackUP2Inputs':
                owner = path.split('.')[1]
                if step.get('task') != owner:
                    raise ConfigError(
                        f"{path}.task: the {section} of task '{owner}' packs samples for task "
                        f"'{step.get('task')}'; set it to '{owner}'.")
