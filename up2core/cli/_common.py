"""What the ``up2`` commands share: exit statuses, the runner commands' options and config
preparation, and the one-line error every user error ends in."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from up2core.errors import UserError

EXIT_USAGE = 2

#: ``up2 infer`` over several images: it ran to the end, but some images were skipped
EXIT_PARTIAL = 1

#: what ``up2 train`` trains when no config is named (``up2 train --data mine.yaml``)
MAIN_JOB_CONFIG = 'up2_tiny_shapes_generalist'

#: ``--replay`` of a finetune that names none (``up2 train --data D --load-from CKPT``):
#: replayed : your steps, chosen from benchmarks/new_names.py (docs: own data, measured)
DEFAULT_REPLAY = 0.3
#: a replaying finetune's learning rate, times the config's (which trained the checkpoint from
#: its start): the checkpoint is a good start, so it moves less far (benchmarks/new_names.py)
FINETUNE_LR_SCALE = 0.2
#: ``--distill`` of such a finetune: each task's loss gets this weight x how far the shared
#: decoder's outputs moved from the checkpoint's (benchmarks/new_names.py)
DEFAULT_DISTILL = 10.0
#: how a distilling run distils unless told (``--distill-every``, ``--[no-]distill-image``): on
#: one step in 2 (the teacher's forward pass half as often), keeping the image encoder's maps
#: too; as well as on every step with the decoder alone, at 1.22x the plain finetune's steps
#: instead of 1.38x (benchmarks/new_names.py)
DEFAULT_DISTILL_EVERY = 2
DEFAULT_DISTILL_IMAGE = True


def loading_args(p: argparse.ArgumentParser, data_help: str | None) -> None:
    """``--data`` (unless ``data_help`` is None) and ``--partial-load``: how a command that
    loads a checkpoint takes it."""
    if data_help is not None:  # (the runner commands have --data already)
        p.add_argument('--data', metavar='DATA.yaml', help=data_help)
    p.add_argument('--partial-load', action='store_true', help='load a checkpoint that does '
                   'not fit the config exactly (what fits; the rest stays random)')



def runner_args(p: argparse.ArgumentParser, default_config: str | None = None) -> None:
    """The options of the commands that drive MMEngine's Runner (``train``, ``test``)."""
    if default_config is None:
        p.add_argument('config', help='config file, or the name of a packaged config')
    else:
        p.add_argument('config', nargs='?', default=default_config,
                       help='config file, or the name of a packaged config (default: '
                       f'{default_config}, the main job\'s)')
    p.add_argument('--work-dir', help='where logs and checkpoints go '
                   '(default: work_dirs/<config name>)')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', default=[],
                   help="override config keys, e.g. train_cfg.max_iters=100; a key that "
                   "does not exist yet must be written '+key=value'")
    p.add_argument('--tasks', metavar='A,B', help='run only these tasks of the config '
                   '(comma-separated); the others are dropped everywhere')
    p.add_argument('--overwrite-data', action='store_true',
                   help='regenerate generated data (Shapes) whose spec differs from the '
                        "config's, instead of using the data found there")
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                   help="'pytorch' under torchrun for distributed runs")
    p.add_argument('--data', metavar='DATA.yaml', help="your own data: a dataset file "
                   "naming each task's files (see `up2 data check --help`); the config's "
                   "other tasks drop out, names come from the data")
    p.add_argument('--verbose', action='store_true', help="MMEngine's full console: the "
                   'config, the environment, every log line (always in the log file)')



def _prepare_config(args: argparse.Namespace):
    from up2core.config import check_config, load_config

    if getattr(args, 'overwrite_data', False):
        from up2core.data.prepare import OVERWRITE_ENV

        os.environ[OVERWRITE_ENV] = '1'  # read where the datasets prepare their data
    cfg = load_config(args.config, args.cfg_options, tasks=args.tasks)
    if getattr(args, 'data', None):
        from up2core.data.dataset_file import apply_data_file, load_data_file

        need = ('train',) if args.command == 'train' else ('val',)
        data = load_data_file(args.data)
        if args.tasks:  # --tasks a,b picks among the file's tasks too
            kept = [t.strip() for t in args.tasks.split(',') if t.strip()]
            data.tasks = {t: source for t, source in data.tasks.items() if t in kept}
            if not data.tasks:
                raise UserError(f'--tasks {args.tasks}: {args.data} names none of them')
        from up2core.config import parse_cfg_options

        overridden = {k.lstrip('+') for k in (
            args.cfg_options if isinstance(args.cfg_options, dict)
            else parse_cfg_options(args.cfg_options or []))}
        replay = _replay(args, cfg)
        apply_data_file(cfg, data, need=need, replay=replay, overridden=overridden,
                        keep_names=getattr(args, 'keep_names', False))
        if replay is not None and getattr(args, 'load_from', None):
            _finetune_learning_rate(cfg, overridden)
    elif getattr(args, 'replay', None) is not None:
        raise UserError('--replay mixes the config\'s own data back into training on yours: '
                        'give your data with --data')
    elif getattr(args, 'keep_names', False):
        raise UserError("--keep-names keeps the config's names beside those of your data: "
                        'give your data with --data')
    elif getattr(args, 'plain_finetune', False):
        raise UserError('--plain-finetune is a finetune on your data: give it with --data '
                        '(and the checkpoint with --load-from)')
    if getattr(args, 'freeze', None):
        cfg.model['freeze'] = list(args.freeze)  # (item: addict's Dict has a freeze method)
    if getattr(args, 'tune', None):
        cfg.model['tune'] = list(args.tune)
    check_config(cfg)  # types and task names, before a minute of Runner set-up
    cfg.setdefault('default_scope', 'up2core')
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(str(args.config)).stem)
    if getattr(args, 'vis', None):
        from up2core.engine.tracking import apply_trackers

        apply_trackers(cfg, args.vis)
    return cfg


def _replay(args: argparse.Namespace, cfg) -> float | None:
    """The ``--replay`` weight of a run on the user's data: the one given; for a finetune
    (``--load-from``) without ``--plain-finetune``, the default that keeps what the checkpoint
    knew (:data:`DEFAULT_REPLAY`), unless the config's own data is
    not here to replay (said in one warning line); else none."""
    from up2core.data.dataset_file import missing_replay_data

    replay = getattr(args, 'replay', None)
    plain = getattr(args, 'plain_finetune', False)
    if plain and replay is not None:
        raise UserError('--plain-finetune trains on your data alone; --replay mixes the '
                        "config's data back in: give one of them")
    if replay is not None or plain or args.command != 'train' or \
            not getattr(args, 'load_from', None):
        return replay
    missing = missing_replay_data(cfg.to_dict())
    if missing:
        print(f"up2: warning: the config's own training data is not here ({missing[0]}"
              f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}), so this finetune "
              f'cannot replay it and will forget what the checkpoint knew of it; point the '
              f'config at it (--cfg-options ..._data_root=DIR) or add --plain-finetune',
              file=sys.stderr)
        return None
    return DEFAULT_REPLAY


def distill_weight(args: argparse.Namespace) -> float | None:
    """The ``--distill`` weight of a training run: the one given (0: none); for a finetune on
    the user's data (``--data`` and ``--load-from``) without ``--plain-finetune``, the default
    that keeps what the checkpoint knew (:data:`DEFAULT_DISTILL`); else none.

    Raises:
        UserError: a weight that is negative or not finite, or one given to a run that starts
            from no checkpoint (there is nothing to distil from).
    """
    weight = getattr(args, 'distill', None)
    start = getattr(args, 'load_from', None) or getattr(args, 'resume', None) is not None
    if weight is not None:
        if not 0 <= weight < float('inf'):
            raise UserError(f'--distill {weight:g}: give a weight >= 0 (0: off; the default of '
                            f'a finetune is {DEFAULT_DISTILL:g})')
        if weight and not start:
            raise UserError(f'--distill {weight:g} keeps the outputs of the checkpoint a run '
                            'starts from: give it with --load-from CKPT')
        return weight or None
    if getattr(args, 'plain_finetune', False) or not getattr(args, 'load_from', None) or \
            not getattr(args, 'data', None):
        return None
    return DEFAULT_DISTILL


def distillation_hook(args: argparse.Namespace) -> dict | None:
    """The ``DistillationHook`` config of a training run (:func:`distill_weight`; with
    ``--distill-every`` / ``--[no-]distill-image`` / ``--distill-tasks``, or their defaults), or
    None when it does not distil.

    Raises:
        UserError: a bad weight (:func:`distill_weight`), ``--distill-every`` below 1, or an
            option that shapes a distillation the run does not make.
    """
    weight = distill_weight(args)
    tasks = getattr(args, 'distill_tasks', None)
    image = getattr(args, 'distill_image', None)
    every = getattr(args, 'distill_every', None)
    if not weight:
        if tasks or image is not None or every is not None:
            option = '--distill-tasks' if tasks else '--distill-every' if every is not None \
                else '--distill-image' if image else '--no-distill-image'
            raise UserError(f'{option} says how to distil: give it with --distill W (or a '
                            'finetune that distils by default)')
        return None
    every = DEFAULT_DISTILL_EVERY if every is None else every
    if every < 1:
        raise UserError(f'--distill-every {every}: give a number of steps >= 1 (1: every step)')
    hook = dict(type='DistillationHook', weight=weight, every=every,
                image=DEFAULT_DISTILL_IMAGE if image is None else bool(image))
    if tasks:
        hook['tasks'] = list(tasks)
    return hook


def _finetune_learning_rate(cfg, overridden: set[str]) -> None:
    """A finetune that keeps what its checkpoint knew steps at :data:`FINETUNE_LR_SCALE` x the
    config's learning rate, unless the command line set one; said in one ``up2:`` line."""
    from up2core.config import note

    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    if not isinstance(optimizer.get('lr'), (int, float)) or \
            {'optim_wrapper.optimizer.lr', 'lr'} & overridden:
        return
    old = optimizer['lr']
    cfg.optim_wrapper.optimizer.lr = old * FINETUNE_LR_SCALE
    note(f'finetune: learning rate {old:g} -> {old * FINETUNE_LR_SCALE:g} (x{FINETUNE_LR_SCALE:g} '
         f"the config's, as the checkpoint is a trained start; --cfg-options "
         f'optim_wrapper.optimizer.lr=... sets another, --plain-finetune keeps the config\'s)')


def _cpu_distributed(cfg) -> None:
    """``--launcher pytorch`` without CUDA (torchrun on CPUs, gloo).

    MMEngine 0.10 always calls ``torch.cuda.set_device`` when it starts a process group and
    wraps the model with ``device_ids=[local_rank]``; both fail on a CPU.  So the process group is
    started here (the Runner then reuses it) and DDP gets ``device_ids=None``.
    """
    import torch
    import torch.distributed as dist

    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
        if backend != 'gloo':
            raise UserError(f"distributed training on CPUs needs the gloo backend, not "
                            f"'{backend}': --cfg-options env_cfg.dist_cfg.backend=gloo")
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('find_unused_parameters', True)
    cfg.model_wrapper_cfg = wrapper


def _build_runner(cfg):
    from up2core.engine.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    hooks = list(cfg.get('custom_hooks') or [])
    # whatever the config (one not based on UP2's runtime): the console's progress lines, a
    # finetune's checkpoints keeping the base's other tasks, the run's results.csv / .png and
    # its predictions drawn at each validation
    for needed in ('ConsoleProgressHook', 'BaseCheckpointHook', 'RunResultsHook',
                   'PredictionsHook'):
        if not any(str(h.get('type')).split('.')[-1] == needed
                   for h in hooks if isinstance(h, dict)):
            hooks.append(dict(type=needed))
    cfg.custom_hooks = hooks
    _cpu_distributed(cfg)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS

        return RUNNERS.build(cfg)
    from up2core.engine.runner import UP2Runner

    return UP2Runner.from_cfg(cfg)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from up2core.config import ConfigError
    from up2core.errors import CheckpointError, DataError, NonFiniteTrainingError, TaskMismatchError
    from up2core.plugin import PluginLoadError
    from up2core.registry import RegistryConflictError, UnknownNameError

    return (UserError, ConfigError, PluginLoadError, RegistryConflictError, UnknownNameError,
            FileExistsError, FileNotFoundError, DataError, TaskMismatchError,
            NonFiniteTrainingError, CheckpointError)


def _fail(message: Any) -> int:
    text = str(message).strip()
    if 'Original Traceback' in text:
        # Raised in a DataLoader worker: torch re-raises it with the worker's traceback in the
        # message; its last line is ours ("up2core.errors.DataError: <message>").
        text = text.splitlines()[-1].split(': ', 1)[-1]
    print(f'up2: error: {text}', file=sys.stderr)
    return EXIT_USAGE
