"""A user's own data, declared in one YAML file (``up2 train CONFIG --data my.yaml``).

The file names, per task, where the data of each split lies, in a layout the user already has
(:mod:`up2core.data.layouts`: COCO instances, an image-folder tree, a captions file); the
form is :data:`EXAMPLE` (which ``up2 data --help`` prints too).

:func:`load_data_file` reads and checks the file (unknown keys, missing files and malformed
entries are :class:`~up2core.errors.DataError` s naming the key); :func:`apply_data_file`
points a config at it: the tasks the file does not name drop out, each named task's datasets,
evaluator and names (class names, caption vocabulary) come from the data, and everything else
(model sizes, pipelines, batch sizes, schedule) stays the config's.

Which layout a task reads is the task's own declaration (``Task.data_layout``), and what the data
changes in the task's config is the task's own answer (``Task.data_options``): a third-party
task takes part without the core knowing its name.

Examples:
    >>> from up2core.data.dataset_file import load_data_file
    >>> data = load_data_file('my_data.yaml')                           # doctest: +SKIP
    >>> sorted(data.tasks)                                              # doctest: +SKIP
    ['classification', 'detection']
"""

from __future__ import annotations

import copy

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from up2core.errors import DataError

#: a dataset file naming every built-in task (any subset will do)
EXAMPLE = """\
path: /data/mine                # the other paths are relative to it (default: this file's folder)
name: my-parts                  # optional: how checkpoints and reports call the data
settings: {image_size: 320, max_iters: 500}   # optional: what the config's tuning becomes
detection:      {train: {ann: annotations/train.json, images: images/train},
                 val:   {ann: annotations/val.json,   images: images/val}}
segmentation:   {train: {ann: annotations/train.json, images: images/train},
                 val:   {ann: annotations/val.json,   images: images/val}}
classification: {train: cls/train, val: cls/val,    # image-folder trees
                 options: {prompt: 'a photo of a {}.'}}   # optional: the task's own options
captioning:     {train: {ann: captions_train.jsonl}, val: {ann: captions_val.jsonl}}
retrieval:      {train: {ann: captions_train.jsonl}, val: {ann: captions_val.jsonl}}
"""
#: keys of the file's top level besides the task names
TOP_KEYS = ('path', 'name', 'settings')
#: keys of ``settings``: the config's tuning the data changes (``image_size``: the longer side
#: every task's images are brought down to, LimitImageSize's max_side; ``max_iters``: training
#: steps, the schedule following)
SETTINGS_KEYS = ('image_size', 'max_iters')
#: keys of one task's entry
TASK_KEYS = ('train', 'val', 'classes', 'filter_empty', 'options')
#: keys of one split of a task
SPLIT_KEYS = ('ann', 'images')
SPLITS = ('train', 'val')


@dataclass
class SplitSource:
    """Where one split of one task lies: an annotation file and/or an image folder (absolute)."""

    ann: Path | None = None
    images: Path | None = None

    def as_dict(self) -> dict:
        return {k: str(v) for k, v in (('ann', self.ann), ('images', self.images)) if v}


@dataclass
class TaskSource:
    """One task's entry of a dataset file."""

    task: str
    #: the file's ``path``: what paths inside annotation files (captions) are relative to
    root: Path
    splits: dict[str, SplitSource] = field(default_factory=dict)
    #: image-folder layouts: a file of readable class names, one per class folder
    classes: Path | None = None
    #: COCO layouts: leave out training images without annotations (kept as negatives otherwise)
    filter_empty: bool = False
    #: the task's own options for this data (``prompt`` of classification...), over the config's
    options: dict = field(default_factory=dict)

    def split(self, name: str) -> SplitSource | None:
        return self.splits.get(name)


@dataclass
class DataFile:
    """A parsed dataset file: its location, root and one :class:`TaskSource` per task."""

    file: Path
    root: Path
    name: str
    tasks: dict[str, TaskSource]
    #: ``settings:`` of the file (:data:`SETTINGS_KEYS`)
    settings: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """What a checkpoint records of the data it was trained on."""
        return {'name': self.name, 'file': str(self.file), 'path': str(self.root),
                'tasks': {t: {s: src.as_dict() for s, src in source.splits.items()}
                          for t, source in self.tasks.items()}}


def _fail(path: Path, message: str):
    raise DataError(f'{path}: {message}')


def _unknown(path: Path, where: str, key: Any, allowed: tuple[str, ...] | list[str]) -> None:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    _fail(path, f"unknown key '{key}' in {where}.{hint} Allowed: {', '.join(allowed)}")


def _resolve(path: Path, root: Path, value: Any, where: str, want: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        _fail(path, f'{where} must be a path (a string), got {value!r}')
    resolved = Path(value).expanduser()
    resolved = resolved if resolved.is_absolute() else root / resolved
    exists = resolved.is_dir() if want == 'dir' else resolved.is_file()
    if not exists:
        kind = 'folder' if want == 'dir' else 'file'
        _fail(path, f"{where}: {kind} '{resolved}' not found (paths are relative to "
                    f"'path', here {root})")
    return resolved


def load_data_file(file: str | Path) -> DataFile:
    """Read and check a dataset file (see the module docstring).

    Checks the keys and that every named file and folder exists; what is inside them is
    ``up2 data check``'s business (:mod:`up2core.data.check`).

    Raises:
        DataError: the file, the key and what to write instead.
    """
    import yaml

    path = Path(file)
    if not path.is_file():
        raise DataError(f"dataset file '{path}' not found (a YAML file naming your data per "
                        f"task; see `up2 data --help`)")
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f'{path}: not readable as YAML ({first})') from None
    if not isinstance(data, dict):
        _fail(path, 'expected a mapping of task names to their data (and an optional '
                    "'path'), e.g. 'detection: {train: {ann: a.json, images: imgs}}'")
    root_value = data.get('path', '.')
    if not isinstance(root_value, str) or not root_value.strip():
        _fail(path, f"'path' must be a folder (a string), got {root_value!r}")
    root = Path(root_value).expanduser()
    root = (root if root.is_absolute() else path.resolve().parent / root).resolve()
    if not root.is_dir():
        _fail(path, f"'path': folder '{root}' not found")
    name = data.get('name', path.stem)
    if not isinstance(name, str) or not name.strip():
        _fail(path, f"'name' must be a string, got {name!r}")
    settings = data.get('settings') or {}
    if not isinstance(settings, dict):
        _fail(path, f"'settings' must be a mapping, e.g. settings: {{image_size: 320}}, got "
                    f'{settings!r}')
    for key, value in settings.items():
        if key not in SETTINGS_KEYS:
            _unknown(path, "'settings'", key, SETTINGS_KEYS)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            _fail(path, f'settings.{key} must be a positive integer, got {value!r}')
    tasks: dict[str, TaskSource] = {}
    for key, entry in data.items():
        if key in TOP_KEYS:
            continue
        if not isinstance(key, str):
            _fail(path, f'task names are strings, got {key!r}')
        tasks[key] = _task_source(path, root, key, entry)
    if not tasks:
        _fail(path, 'names no task: add at least one of detection, segmentation, '
                    'classification, captioning, retrieval (or a plugin task)')
    return DataFile(file=path.resolve(), root=root, name=name.strip(), tasks=tasks,
                    settings=dict(settings))


def _task_source(path: Path, root: Path, task: str, entry: Any) -> TaskSource:
    if not isinstance(entry, dict):
        _fail(path, f"'{task}' must be a mapping with 'train' and/or 'val', got {entry!r}")
    for key in entry:
        if key not in TASK_KEYS:
            _unknown(path, f"'{task}'", key, TASK_KEYS)
    source = TaskSource(task=task, root=root)
    for split in SPLITS:
        if split not in entry:
            continue
        value = entry[split]
        where = f'{task}.{split}'
        if isinstance(value, str):  # an image folder (image-folder trees)
            source.splits[split] = SplitSource(images=_resolve(path, root, value, where, 'dir'))
            continue
        if not isinstance(value, dict) or not value:
            _fail(path, f"{where} must be a folder or a mapping with 'ann' and/or 'images', "
                        f'got {value!r}')
        for key in value:
            if key not in SPLIT_KEYS:
                _unknown(path, f"'{where}'", key, SPLIT_KEYS)
        source.splits[split] = SplitSource(
            ann=_resolve(path, root, value['ann'], f'{where}.ann', 'file')
            if 'ann' in value else None,
            images=_resolve(path, root, value['images'], f'{where}.images', 'dir')
            if 'images' in value else None)
    if not source.splits:
        _fail(path, f"'{task}' names neither 'train' nor 'val'")
    if 'classes' in entry:
        source.classes = _resolve(path, root, entry['classes'], f'{task}.classes', 'file')
    if 'options' in entry:
        if not isinstance(entry['options'], dict):
            _fail(path, f"{task}.options must be a mapping of the task's options, e.g. "
                        f"{{prompt: 'a photo of a {{}}.'}}, got {entry['options']!r}")
        source.options = dict(entry['options'])
    if 'filter_empty' in entry:
        if not isinstance(entry['filter_empty'], bool):
            _fail(path, f"{task}.filter_empty must be true or false, got "
                        f"{entry['filter_empty']!r}")
        source.filter_empty = entry['filter_empty']
    return source


# --------------------------------------------------------------------------- config


def task_layouts(cfg) -> dict[str, str]:
    """The data layout each task of ``cfg`` reads (its Task class's ``data_layout``)."""
    from up2core.registry import TASKS

    layouts = {}
    for name, task_cfg in ((cfg.get('model') or {}).get('tasks') or {}).items():
        cls = TASKS.get(task_cfg.get('type')) if isinstance(task_cfg, dict) else None
        layouts[name] = getattr(cls, 'data_layout', None)
    return layouts


#: the name a task's replay copy takes (``--replay``)
REPLAY_PREFIX = 'replay_'


def missing_replay_data(original: dict) -> list[str]:
    """The train datasets of ``original`` (a config dict) whose files are not here and that
    cannot be generated (no ``prepare``): ``'task: path'`` each.  A finetune cannot replay
    them."""
    missing = []
    for task, loader in ((original.get('train_dataloader') or {}).items()):
        dataset = (loader or {}).get('dataset') if isinstance(loader, dict) else None
        if not isinstance(dataset, dict) or dataset.get('prepare'):
            continue
        root = Path(str(dataset.get('data_root') or '.'))
        ann = dataset.get('ann_file')
        path = root / ann if ann else root
        if not path.exists():
            missing.append(f'{task}: {path}')
    return missing


def _retarget_pipeline(loader: dict, task: str) -> None:
    """Make a copied loader's samples name ``task`` (their ``PackUP2Inputs`` step)."""
    dataset = loader.get('dataset') or {}
    for step in dataset.get('pipeline') or []:
        if isinstance(step, dict) and str(step.get('type', '')).split('.')[-1] == \
                'PackUP2Inputs':
            step['task'] = task


def replay_tasks(plain: dict, original: dict, weight: float) -> list[str]:
    """Add, to the plain config dict ``plain``, a replay copy of every task of ``original`` (the
    config before ``--data``) that has training data: ``replay_<task>``, the same task on the
    config's own data (its datasets, pipelines, evaluator), sharing every parameter and the
    task's learned temperature.

    The replay copies REPLACE a share of the steps instead of adding work to each: the loop
    draws, at every step, either the user's tasks (their group, with the step ``plain`` has) or
    the replayed ones (with the step ``original`` had, e.g. ``'shared'``: the base's images
    encoded once for all its tasks), ``weight`` : 1 (``train_cfg.groups``).  So a finetune of
    N steps costs about what N steps of the user's tasks alone cost, ``weight / (1 + weight)``
    of them on the base's tasks.  Where the config evaluated its tasks on shared images
    (``val_cfg.shared_images=True``), the replayed ones still do, as one group.

    Why copies and not a mixed dataset: a task scores its batch against ONE set of names (the
    user's categories); the original data has its own names, so its batches must be another
    task's.  As tasks own no parameters (only what they build from their names), a replay copy
    trains exactly the weights the user's task trains.  Where the user's run trains the task
    too, the copy takes what the two must share from ``Task.replay_options`` (captioning: the
    saved task's vocabulary, the union of the user's words and the base's).

    Returns:
        The replay tasks added.
    """
    from up2core.registry import TASKS

    old_train = original.get('train_cfg') or {}
    weights = dict(old_train.get('sampling_weights') or {})
    added = []
    for task, task_cfg in (original['model'].get('tasks') or {}).items():
        train = (original.get('train_dataloader') or {}).get(task)
        if not isinstance(train, dict):
            continue
        name = REPLAY_PREFIX + task
        copied = copy.deepcopy(task_cfg)
        copied.setdefault('likelihood_group', task_cfg.get('likelihood_group') or task)
        own = plain['model']['tasks'].get(task)
        if isinstance(own, dict) and own.get('type') is not None:
            copied.update(TASKS.get(own['type']).replay_options(task, own))
        plain['model']['tasks'][name] = copied
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            loader = (original.get(key) or {}).get(task)
            if isinstance(loader, dict) and isinstance(plain.get(key), dict):
                loader = copy.deepcopy(loader)
                _retarget_pipeline(loader, name)
                plain[key][name] = loader
        for key in ('val_evaluator', 'test_evaluator'):
            evaluator = (original.get(key) or {}).get(task)
            if isinstance(evaluator, dict) and isinstance(plain.get(key), dict) \
                    and name in plain.get(key.replace('evaluator', 'dataloader'), {}):
                plain[key][name] = copy.deepcopy(evaluator)
        added.append(name)
    if not added:
        return added
    train_cfg = plain.setdefault('train_cfg', {})
    yours = [t for t in plain['train_dataloader'] if t not in added]
    sampling = dict(train_cfg.get('sampling_weights') or {})
    sampling = {t: sampling.get(t, 1.0) for t in yours}
    sampling.update({REPLAY_PREFIX + t: weights.get(t, 1.0) for t in
                     (name[len(REPLAY_PREFIX):] for name in added)})
    train_cfg['sampling_weights'] = sampling
    train_cfg['groups'] = {
        'yours': dict(tasks=yours, weight=1.0, mode=train_cfg.get('mode', 'unmixed')),
        'replay': dict(tasks=added, weight=weight, mode=old_train.get('mode', 'unmixed'))}
    for key in ('val_cfg', 'test_cfg'):  # the base's images, encoded once for its tasks again
        loaders = plain.get(key.replace('_cfg', '_dataloader')) or {}
        group = [name for name in added if name in loaders]
        if (original.get(key) or {}).get('shared_images') is True and len(group) > 1 \
                and isinstance(plain.get(key), dict):
            plain[key]['shared_images'] = [group]
    return added


def apply_data_file(cfg, data: DataFile, need: tuple[str, ...] = ('train', 'val'),
                    quiet: bool = False, replay: float | None = None,
                    overridden: set[str] = frozenset(), keep_names: bool = False) -> list[str]:
    """Point ``cfg`` at the user's data in place; return the tasks dropped.

    * tasks of the config the file does not name are dropped everywhere (``select_tasks``);
    * each named task's train / val / test datasets become readers of the user's files, with
      the config's pipeline, batch size and loader settings; its evaluator's ground-truth file
      follows; its names come from the data (``Task.data_options``);
    * steps and evaluation that need every task on the same images (``train_cfg.mode='shared'``,
      ``shared_images``) fall back to one batch per task, as the user's tasks have their own
      images;
    * the data's description goes into the config (``up2_data``), and from there into the meta
      of every checkpoint.

    ``need`` are the splits every named task must have (``('train',)`` at least for training,
    ``('val',)`` for testing).  ``quiet`` logs nothing (inference: stdout holds results).
    ``overridden``: config keys the command line set (``--cfg-options``): the data file's
    ``settings`` do not change them.
    ``replay``: keep training (and evaluating) every task of the config on its own data too, on
    ``replay : 1`` of the steps (:func:`replay_tasks`): the usual remedy against forgetting what
    the checkpoint knew, across classes and across tasks.
    ``keep_names``: each task scores the config's own training names beside the data's
    (``Task.kept_names_options``), as candidates the user's objects are not.

    Raises:
        DataError: a task the config cannot train, a layout the task cannot read, a missing
            split.
    """
    if quiet:
        from mmengine.logging import MMLogger

        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            return apply_data_file(cfg, data, need, replay=replay, overridden=overridden,
                                   keep_names=keep_names)
        finally:
            logger.setLevel(level)
    from mmengine.config import ConfigDict

    from up2core.config import note, select_tasks
    from up2core.data.layouts import get_layout
    from up2core.registry import TASKS

    layouts = task_layouts(cfg)
    for task in data.tasks:
        if task not in layouts:
            close = difflib.get_close_matches(task, list(layouts), n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ''
            raise DataError(f"{data.file}: '{task}' is not a task of this config (it has "
                            f"{', '.join(layouts) or 'none'}).{hint} Start from a config that "
                            f'trains it, or remove it from the dataset file.')
        if layouts[task] is None:
            raise DataError(f"{data.file}: task '{task}' does not declare a data layout "
                            f"(Task.data_layout), so it cannot read a dataset file; configure "
                            f'its dataset in a config instead')
        for split, key in (('train', 'train_dataloader'), ('val', 'val_dataloader')):
            loaders = cfg.get(key) or {}
            if split in need and task not in loaders:
                raise DataError(f"{data.file}: the config has no {key} for task '{task}', "
                                f'so its {split} data would go unused; start from a config '
                                f'that has one')
        missing = [s for s in need if data.tasks[task].split(s) is None]
        if missing:
            raise DataError(f"{data.file}: '{task}' has no '{missing[0]}' split; add "
                            f"{task}: {{{missing[0]}: ...}}")
    if replay is not None and not (0 < replay < float('inf')):
        raise DataError(f'--replay {replay}: give a weight > 0 (1: as much as your data)')
    original = cfg.to_dict() if replay or keep_names else None
    select_tasks(cfg, list(data.tasks), reason=f'--data {data.file.name}')
    stages = {'train_dataloader': 'train', 'val_dataloader': 'val', 'test_dataloader': 'val'}
    plain = cfg.to_dict()
    keeping: list[str] = []  # the tasks --keep-names changed
    for task, source in data.tasks.items():
        layout = get_layout(layouts[task])
        names = layout.names(source)
        for key, split in stages.items():
            loaders = plain.get(key)
            if not isinstance(loaders, dict) or task not in loaders:
                continue
            if source.split(split) is None:  # no val split: the task is trained, not evaluated
                loaders.pop(task)
                evaluator = plain.get(key.replace('dataloader', 'evaluator'))
                if isinstance(evaluator, dict):
                    evaluator.pop(task, None)
                continue
            loader = loaders[task]
            loader['dataset'] = layout.dataset(source, split, loader['dataset'], names)
        for key in ('val_evaluator', 'test_evaluator'):
            evaluator = plain.get(key)
            if isinstance(evaluator, dict) and isinstance(evaluator.get(task), dict) \
                    and source.split('val') is not None:
                evaluator[task] = layout.evaluator(source, evaluator[task], names)
        task_cfg = plain['model']['tasks'][task]
        task_cfg.update(TASKS.get(task_cfg['type']).data_options(layout.name, source, names))
        task_cfg.update(source.options)
        if keep_names:
            options = TASKS.get(task_cfg['type']).kept_names_options(
                task_cfg, original['model']['tasks'][task])
            if options:
                task_cfg.update(options)
                keeping.append(task)
    if isinstance(plain.get('targets'), dict):
        plain.pop('targets')  # the config's targets are for its own data
        dict.__delitem__(cfg._cfg_dict, 'targets')
    train_cfg = plain.get('train_cfg') or {}
    changed = []
    if train_cfg.get('mode') == 'shared':
        train_cfg['mode'] = 'mixed'
        changed.append("train_cfg.mode 'shared' -> 'mixed'")
    for key in ('val_cfg', 'test_cfg'):
        if (plain.get(key) or {}).get('shared_images'):
            plain[key]['shared_images'] = False
            changed.append(f'{key}.shared_images -> False')
    if changed:
        note(f"--data: each task reads its own images, so {', '.join(changed)} (one batch per "
             f'task, the same weighted sum of losses)')
    if replay:
        added = replay_tasks(plain, original, replay)
        note(f"--replay {replay:g}: {', '.join(added)} keep training on the config's own data")
    if keep_names:
        note(f"--keep-names: {', '.join(keeping) or 'no task'} also score"
             f"{'s' if len(keeping) == 1 else ''} the config's own names in training, after "
             f'yours (evaluation scores yours)')
    plain['up2_data'] = data.describe()
    for key, value in plain.items():
        if key.startswith('_'):
            continue
        dict.__setitem__(cfg._cfg_dict, key,
                         ConfigDict(value) if isinstance(value, dict) else value)
    apply_settings(cfg, data, overridden)
    note(f'--data {data.file.name} keeps of the config: {kept_tuning(cfg, list(data.tasks))} '
         f"(the data file's `settings: {{image_size: N, max_iters: N}}` and a task's "
         f'`options:` change them)')
    return [t for t in layouts if t not in data.tasks]


def _steps(cfg, tasks: list[str]):
    """Every pipeline step (a dict) of the loaders of ``tasks``."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for task, loader in (cfg.get(key) or {}).items():
            if task in tasks and isinstance(loader, dict):
                for step in (loader.get('dataset') or {}).get('pipeline') or []:
                    if isinstance(step, dict):
                        yield step


def apply_settings(cfg, data: DataFile, overridden: set[str] = frozenset()) -> None:
    """The data file's ``settings`` onto ``cfg`` (keys given on the command line win)."""
    from up2core.config import follow_max_iters

    settings = dict(data.settings)
    if 'image_size' in settings:
        for step in _steps(cfg, list(data.tasks)):
            if str(step.get('type', '')).split('.')[-1] == 'LimitImageSize':
                step['max_side'] = settings['image_size']
    new = settings.get('max_iters')
    old = (cfg.get('train_cfg') or {}).get('max_iters')
    if new and isinstance(old, int) and new != old and \
            not overridden & {'max_iters', 'train_cfg.max_iters'}:
        cfg.train_cfg.max_iters = new
        follow_max_iters(cfg, old, new)


def kept_tuning(cfg, tasks: list[str]) -> str:
    """What a config's tuning is for ``tasks``, in words: the image size, the proposals per
    image, the training steps and the tasks' prompts."""
    parts = []
    sides = sorted({step.get('max_side') for step in _steps(cfg, tasks)
                    if str(step.get('type', '')).split('.')[-1] == 'LimitImageSize'})
    if sides:
        parts.append(f"images at most {'/'.join(map(str, sides))} px a side")
    generator = ((cfg.get('model') or {}).get('image_encoder') or {}).get('proposal_generator')
    if isinstance(generator, dict) and generator.get('num_queries'):
        parts.append(f"{generator['num_queries']} proposals per image")
    steps = (cfg.get('train_cfg') or {}).get('max_iters')
    if steps:
        parts.append(f'{steps} steps')
    for task in tasks:
        prompt = (((cfg.get('model') or {}).get('tasks') or {}).get(task) or {}).get('prompt')
        if prompt:
            parts.append(f"{task}'s prompt {prompt!r}")
    return ', '.join(parts) or 'its model and schedule'


def config_capacity(cfg) -> dict:
    """``{'max_objects', 'image_size'}`` of a config (None where it has none): what caps
    results silently when the data exceeds it (``up2 data check`` warns)."""
    generator = ((cfg.get('model') or {}).get('image_encoder') or {}).get('proposal_generator')
    sides = [step.get('max_side') for step in _steps(cfg, list((cfg.get('model') or {})
                                                                 .get('tasks') or {}))
             if str(step.get('type', '')).split('.')[-1] == 'LimitImageSize']
    return {'max_objects': generator.get('num_queries') if isinstance(generator, dict)
            else None, 'image_size': max(sides) if sides else None}
