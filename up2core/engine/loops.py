"""Multi-task loops for MMEngine's Runner: unmixed task sampling, and validation over every task.

``train_dataloader``, ``val_dataloader`` and ``test_dataloader`` of a UP2 config are dicts keyed by
task name (each value an ordinary MMEngine dataloader config); ``val_evaluator`` and
``test_evaluator`` likewise.  The loops here build one dataloader (and evaluator) per task.

:class:`UnmixedTrainLoop` draws ONE task per iteration, with probabilities ``s_k`` from
``sampling_weights``, from a generator seeded with (seed, iteration): every rank draws the same
task without communicating, and a resumed run continues the very same sequence (torch's
generator is re-seeded per iteration too, so dropout and router noise match as well).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import logging
import os
import signal
import sys
from collections.abc import Iterator

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import BaseLoop
from torch.utils.data import DataLoader

from up2core.data.bad_samples import set_skipped_samples_dir
from up2core.engine.learning import LearningWatch
from up2core.engine.nonfinite import NonFiniteGuard
from up2core.errors import UserError
from up2core.registry import LOOPS


class _TaskLoaders:
    """What ``runner.train_dataloader`` / ``val_dataloader`` is for multi-task loops.

    MMEngine's hooks read ``.dataset.metainfo`` (checkpoint meta, visualiser) and ``len()`` (log
    lines); here they see every task's metainfo, and the length of the loader in use.
    """

    class _Dataset:
        def __init__(self, loaders: dict[str, DataLoader]) -> None:
            self.metainfo = {name: getattr(dl.dataset, 'metainfo', None)
                             for name, dl in loaders.items()}

    def __init__(self, loaders: dict[str, DataLoader]) -> None:
        self.loaders = loaders
        self.dataset = self._Dataset(loaders)
        self.current = next(iter(loaders))
        #: what the console calls the tasks running (None: ``current``)
        self.label: str | None = None

    def __len__(self) -> int:
        return len(self.loaders[self.current])

    def __getitem__(self, task: str) -> DataLoader:
        return self.loaders[task]


def _build_loaders(runner, dataloaders: dict) -> dict[str, DataLoader]:
    if not isinstance(dataloaders, dict) or not dataloaders:
        raise TypeError('a multi-task loop needs dataloaders as dict(task_name=dataloader_cfg)')
    built = {}
    for name, cfg in dataloaders.items():
        if isinstance(cfg, DataLoader):
            built[name] = cfg
            continue
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        loader = runner.build_dataloader(cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)
        if loader.num_workers > 0:
            loader.worker_init_fn = functools.partial(_die_with_parent, loader.worker_init_fn,
                                                      os.getpid())
        built[name] = loader
    return built


def _die_with_parent(worker_init_fn, parent: int, worker_id: int) -> None:
    """A dataloader worker's start: ask Linux to SIGKILL it when the training process dies,
    then the loader's own ``worker_init_fn``.

    When the training process is SIGKILLed (``kill -9``, the OOM killer, a scheduler killing
    one process), a worker with batches ready blocks forever writing them to a pipe whose
    reading end it holds itself (forked), so it never sees the parent go: found by the
    kill/resume tests, one orphan per task kept its memory until rebooted.  Elsewhere than
    Linux, nothing is changed."""
    if sys.platform.startswith('linux'):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # it died before the request took effect
                os._exit(1)
        except (OSError, AttributeError):
            pass
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


def _infinite(loader: DataLoader) -> Iterator:
    epoch = 0
    while True:
        sampler = getattr(loader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


@LOOPS.register_module()
class UnmixedTrainLoop(BaseLoop):
    """Iteration-based training that draws one task per iteration (unmixed sampling).

    Args:
        runner: the Runner.
        dataloader: ``dict(task=dataloader_cfg, ...)`` (the config's ``train_dataloader``).
        max_iters: iterations to train.
        sampling_weights: ``dict(task=weight)``, normalised to the sampling ratios ``s_k``;
            default: equal.
        val_begin, val_interval: validate every ``val_interval`` iterations from ``val_begin``.
        mode: ``'unmixed'`` (the paper's: one task per iteration), ``'mixed'`` (the ablation:
            every iteration takes one batch of EVERY task and steps once on
            ``sum_k s_k * L_k``) or ``'shared'`` (mixed, over the SAME images for every task:
            each image is encoded once per step for all the tasks whose annotations it carries,
            see :meth:`UP2Generalist.shared_encoding`; every task's train loader must yield the
            same images in the same order: datasets over the same image list, equal batch
            sizes, the same sampler, no random transform that changes pixels, e.g. no
            ``RandomFlip``).  Not the paper's method: a config option for small machines.
        max_nonfinite_steps: steps with a non-finite loss or gradient are skipped (the weights
            stay finite) and logged with their task; one more than this stops the run with
            :class:`~up2core.errors.NonFiniteTrainingError` (see :mod:`up2core.engine.nonfinite`).
        learning_watch: ``dict(window=, collapse_cosine=, chance_margin=, start=)`` of
            :class:`~up2core.engine.learning.LearningWatch` (a likelihood group whose candidates
            collapse or whose loss stays at chance is logged once and recorded in
            ``metrics.json``); ``False`` turns it off.
        groups: ``dict(name=dict(tasks=[...], weight=w, mode='mixed'))``: unmixed sampling of
            GROUPS of tasks.  Each iteration draws one group (probability ``w`` over the sum of
            the weights, seeded like the task draw); a group's ``mode`` says how its tasks share
            the step, as ``mode`` does for the whole loop (``'unmixed'``: one of them, by their
            ``sampling_weights``; ``'mixed'`` / ``'shared'``: all of them, their losses weighted
            by their ``sampling_weights`` normalised within the group).  Every task of the
            loaders belongs to exactly one group; ``mode`` is then ignored.  This is how a
            finetune replays the base's tasks (``up2 train --data --replay``): the user's tasks
            in one group, the base's in another drawn on a share of the steps, each with the
            step its config had.

    Example:
        >>> train_cfg = dict(type='UnmixedTrainLoop', max_iters=100, groups=dict(
        ...     yours=dict(tasks=['detection'], weight=0.75, mode='unmixed'),
        ...     replay=dict(tasks=['replay_detection', 'replay_captioning'], weight=0.25,
        ...                 mode='shared')))
    """

    def __init__(self, runner, dataloader: dict, max_iters: int,
                 sampling_weights: dict[str, float] | None = None, val_begin: int = 1,
                 val_interval: int = 1000, mode: str = 'unmixed',
                 max_nonfinite_steps: int = 10, learning_watch: dict | bool = True,
                 groups: dict[str, dict] | None = None) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be 'unmixed', 'mixed' or 'shared', got {mode!r}")
        self.mode = mode
        self._runner = runner
        loaders = _build_loaders(runner, dataloader)
        self.dataloader = _TaskLoaders(loaders)
        self.tasks = list(loaders)
        weights = sampling_weights or {name: 1.0 for name in self.tasks}
        unknown = set(weights) - set(self.tasks)
        missing = set(self.tasks) - set(weights)
        if unknown or missing:
            raise ValueError(f'sampling_weights must name exactly the tasks of '
                             f'train_dataloader {self.tasks}; unknown {sorted(unknown)}, '
                             f'missing {sorted(missing)}')
        total = float(sum(weights[name] for name in self.tasks))
        if total <= 0 or any(weights[name] < 0 for name in self.tasks):
            raise ValueError(f'sampling_weights must be >= 0 and not all 0, got {weights}')
        self.sampling_ratios = {name: weights[name] / total for name in self.tasks}
        self.groups = _check_groups(groups, self.tasks, weights) if groups else None
        if self.groups:
            # a task's share of the steps: its group's, split by its weight within the group
            self.sampling_ratios = {task: group['share'] * group['ratios'][task]
                                    for group in self.groups.values()
                                    for task in group['tasks']}
        self._max_iters = int(max_iters)
        self._max_epochs = 1
        self._epoch = 0
        self._iter = 0
        self.val_begin, self.val_interval = val_begin, val_interval
        self.stop_training = False
        self._iterators = {name: _infinite(dl) for name, dl in loaders.items()}
        self.current_task = mode if mode != 'unmixed' and not self.groups else ''
        self.nonfinite_guard = NonFiniteGuard(max_nonfinite_steps,
                                              where=lambda: (self._iter, self.current_task))
        self.learning_watch = None if not learning_watch else LearningWatch(
            **(learning_watch if isinstance(learning_watch, dict) else {}))

    @property
    def max_epochs(self) -> int:
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        return self._max_iters

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def iter(self) -> int:
        return self._iter

    def task_at(self, iteration: int) -> str:
        """The task drawn at ``iteration``: a function of (seed, iteration) only.  With
        ``groups``, the group drawn (see :meth:`plan_at`)."""
        if self.groups:
            return self.plan_at(iteration)[0]
        rng = np.random.default_rng([self.runner.seed or 0, iteration])
        probs = np.array([self.sampling_ratios[name] for name in self.tasks])
        return self.tasks[int(rng.choice(len(self.tasks), p=probs))]

    def plan_at(self, iteration: int) -> tuple[str, str, dict[str, float]]:
        """What iteration ``iteration`` trains: ``(name, mode, {task: loss weight})``.

        ``name`` is the task (unmixed), the loop's mode (mixed, shared) or the group drawn;
        ``mode`` the step's kind; the dict the tasks it takes a batch of, each with the weight
        of its loss in the step (unmixed: its sampling ratio, which MT-AdamW uses).  A function
        of (seed, iteration) only.
        """
        if not self.groups:
            if self.mode == 'unmixed':
                task = self.task_at(iteration)
                return task, 'unmixed', {task: self.sampling_ratios[task]}
            return self.mode, self.mode, dict(self.sampling_ratios)
        rng = np.random.default_rng([self.runner.seed or 0, iteration])
        names = list(self.groups)
        shares = np.array([self.groups[name]['share'] for name in names])
        name = names[int(rng.choice(len(names), p=shares))]
        group = self.groups[name]
        if group['mode'] != 'unmixed':
            return name, group['mode'], dict(group['ratios'])
        tasks = group['tasks']
        task = tasks[int(rng.choice(len(tasks), p=[group['ratios'][t] for t in tasks]))]
        return name, 'unmixed', {task: self.sampling_ratios[task]}

    def run(self):
        self.nonfinite_guard.install(self.runner.optim_wrapper)
        set_skipped_samples_dir(self.runner.work_dir)  # before the dataloader workers fork
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(f'Resuming at iteration {self._iter}: replaying the task sequence and '
                      f'advancing each task\'s dataloader past the batches already trained',
                      logger='current', level=logging.WARNING)
            for past in range(self._iter):
                self._seed_iteration(past)
                for task in self.plan_at(past)[2]:
                    next(self._iterators[task])
            if self._val_due(self._iter) and not self._validated(self._iter):
                print_log(f'The validation after iteration {self._iter} did not finish before '
                          f'the run stopped: running it now', logger='current',
                          level=logging.WARNING)
                self.runner.val_loop.run()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self._seed_iteration(self._iter)
            name, mode, weights = self.plan_at(self._iter)
            if mode != 'unmixed':
                if self.groups:
                    self.current_task = name
                    self.runner.message_hub.update_info('task', name)
                self.run_iter({task: next(self._iterators[task]) for task in weights},
                              mode=mode, weights=weights)
            else:
                task = next(iter(weights))
                self.current_task = task
                self.dataloader.current = task
                self.runner.message_hub.update_info('task', task)
                self.runner.message_hub.update_info('task_sampling_ratio',
                                                    self.sampling_ratios[task])
                self._announce(task)
                self.run_iter(next(self._iterators[task]), mode='unmixed')
            if self._val_due(self._iter):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _val_due(self, iteration: int) -> bool:
        """Whether a validation follows training iteration ``iteration`` (1-based count)."""
        return (self.runner.val_loop is not None and iteration >= self.val_begin
                and (iteration % self.val_interval == 0 or iteration == self._max_iters))

    def _validated(self, iteration: int) -> bool:
        """Whether ``metrics.json`` (the :class:`MetricsFileHook`'s file) holds the
        validation after ``iteration``.  A checkpoint is written before the validation that
        follows its iteration, so a run killed during that validation resumes from a
        checkpoint whose validation never finished: it is run again, or the metrics of that
        point would be missing from the resumed run.  Without the hook: run it again."""
        from up2core.engine.hooks import MetricsFileHook

        for hook in self.runner.hooks:
            if isinstance(hook, MetricsFileHook):
                return hook.recorded_iteration(self.runner) == iteration
        return False

    def _seed_iteration(self, iteration: int) -> None:
        """Seed torch's generator from (seed, iteration, rank if ranks differ).

        MMEngine checkpoints keep no RNG state, so without this a resumed run would draw other
        dropout masks and MoE router noise than an uninterrupted one.  Seeding each iteration
        makes iteration ``i`` draw the same numbers however the run got there.
        """
        seed = int(self.runner.seed or 0)
        if self.runner._randomness_cfg.get('diff_rank_seed', False):
            seed += self.runner.rank * 1_000_003
        torch.manual_seed((seed * 1_000_033 + iteration) % (2 ** 63))

    def _announce(self, task: str) -> None:
        """Tell the optimizer (MT-AdamW) this iteration's task, its s_k and its w_k."""
        wrapper = self.runner.optim_wrapper
        target = wrapper if hasattr(wrapper, 'set_task') else getattr(wrapper, 'optimizer', None)
        if not hasattr(target, 'set_task'):
            return
        model = getattr(self.runner.model, 'module', self.runner.model)
        weight = getattr(model.tasks[task], 'loss_weight', 1.0) if hasattr(model, 'tasks') \
            else 1.0
        extra = {}
        if 'num_tasks' in inspect.signature(target.set_task).parameters:  # (older optimizers
            extra['num_tasks'] = len(self.sampling_ratios)                # do not take it)
        target.set_task(task, self.sampling_ratios[task], weight, **extra)

    def _mixed_step(self, batches: dict, weights: dict[str, float] | None = None) -> dict:
        """One optimizer step on ``sum_k s_k * L_k`` over one batch of every task.

        Gradients accumulate task by task (under DDP, synchronised only on the last backward),
        then one step: MT-AdamW sees one combined task with ``s = w = 1``.  ``weights``: each
        task's loss weight (default: its sampling ratio).
        """
        weights = weights or self.sampling_ratios
        model, wrapper = self.runner.model, self.runner.optim_wrapper
        inner = getattr(model, 'module', model)
        if hasattr(wrapper, 'set_task') or hasattr(wrapper.optimizer, 'set_task'):
            target = wrapper if hasattr(wrapper, 'set_task') else wrapper.optimizer
            target.set_task('mixed', 1.0, 1.0)
        log_vars: dict = {}
        for index, (task, batch) in enumerate(batches.items()):
            last = index == len(batches) - 1
            sync = contextlib.nullcontext() if last or not hasattr(model, 'no_sync') \
                else model.no_sync()
            with sync, wrapper.optim_context(model):
                data = inner.data_preprocessor(batch, True)
                loss, task_logs = inner.parse_losses(model(**data, mode='loss'))
                wrapper.backward(loss * weights[task])
            log_vars.update({f'{task}/{key}': value for key, value in task_logs.items()})
        wrapper.step()
        wrapper.zero_grad()
        log_vars['loss'] = sum(weights[t] * log_vars[f'{t}/loss'] for t in batches)
        return log_vars

    def _shared_step(self, batches: dict, weights: dict[str, float] | None = None) -> dict:
        """One optimizer step on ``sum_k s_k * L_k``, every task on the same images, which the
        model encodes once (one forward call, so DDP sees one forward and one backward)."""
        weights = weights or self.sampling_ratios
        model, wrapper = self.runner.model, self.runner.optim_wrapper
        inner = getattr(model, 'module', model)
        if hasattr(wrapper, 'set_task') or hasattr(wrapper.optimizer, 'set_task'):
            target = wrapper if hasattr(wrapper, 'set_task') else wrapper.optimizer
            target.set_task('shared', 1.0, 1.0)
        with wrapper.optim_context(model):
            data = {task: inner.data_preprocessor(batch, True) for task, batch in batches.items()}
            inputs = same_images(data)
            outputs = model(inputs, {task: d['data_samples'] for task, d in data.items()},
                            mode='loss')
            total, log_vars = 0.0, {}
            for task, losses in outputs.items():
                loss, task_logs = inner.parse_losses(losses)
                total = total + loss * weights[task]
                log_vars.update({f'{task}/{key}': value for key, value in task_logs.items()})
            wrapper.backward(total)
        wrapper.step()
        wrapper.zero_grad()
        log_vars['loss'] = total.detach()
        return log_vars

    def run_iter(self, data_batch, mode: str | None = None,
                 weights: dict[str, float] | None = None) -> None:
        """One training step on ``data_batch`` (a batch, or ``{task: batch}``), of ``mode``
        (default: the loop's) with the tasks' loss ``weights`` (default: sampling ratios)."""
        mode = mode or self.mode
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        if mode == 'shared':
            outputs = self._shared_step(data_batch, weights)
        elif mode == 'mixed':
            outputs = self._mixed_step(data_batch, weights)
        else:
            outputs = self.runner.model.train_step(data_batch,
                                                   optim_wrapper=self.runner.optim_wrapper)
        model = getattr(self.runner.model, 'module', self.runner.model)
        likelihood = getattr(model, 'likelihood', None)
        if likelihood is not None and hasattr(likelihood, 'take_observations'):
            observations = likelihood.take_observations()
            if self.learning_watch is not None:
                self.learning_watch.observe(self._iter, observations)
        self.runner.call_hook('after_train_iter', batch_idx=self._iter, data_batch=data_batch,
                              outputs=outputs)
        self._iter += 1


_MODES = ('unmixed', 'mixed', 'shared')


def _check_groups(groups: dict, tasks: list[str], weights: dict[str, float]) -> dict:
    """``groups`` of :class:`UnmixedTrainLoop`, checked, with each group's ``share`` of the
    steps and its tasks' ``ratios`` within it."""
    if not isinstance(groups, dict):
        raise ValueError(f'groups must be dict(name=dict(tasks=[...], weight=, mode=)), got '
                         f'{groups!r}')
    checked, seen = {}, []
    for name, group in groups.items():
        group = dict(group)
        members = list(group.get('tasks') or [])
        mode = group.get('mode', 'unmixed')
        weight = float(group.get('weight', 1.0))
        unknown = [t for t in members if t not in tasks]
        if not members or unknown or mode not in _MODES or weight < 0:
            raise ValueError(f"group '{name}': give tasks of train_dataloader {tasks} (unknown: "
                             f'{unknown}), a mode among {_MODES} (got {mode!r}) and a weight '
                             f'>= 0 (got {weight})')
        total = float(sum(weights[t] for t in members))
        if total <= 0:
            raise ValueError(f"group '{name}': its tasks' sampling_weights are all 0")
        checked[name] = dict(tasks=members, mode=mode, weight=weight,
                             ratios={t: weights[t] / total for t in members})
        seen += members
    twice = sorted({t for t in seen if seen.count(t) > 1})
    left = [t for t in tasks if t not in seen]
    if twice or left:
        raise ValueError(f'groups must hold every task of train_dataloader once: in two '
                         f'groups {twice}, in none {left}')
    total = sum(group['weight'] for group in checked.values())
    if total <= 0:
        raise ValueError('groups: every weight is 0')
    for group in checked.values():
        group['share'] = group['weight'] / total
    return checked


def same_images(data: dict, stage: str = 'train') -> torch.Tensor:
    """The one image batch every task's preprocessed batch holds (``train_cfg.mode='shared'``,
    ``val_cfg.shared_images=True``), or a clear error naming the first task whose images
    differ."""
    tasks = list(data)
    first = data[tasks[0]]['inputs']
    for task in tasks[1:]:
        other = data[task]['inputs']
        if other.shape != first.shape or not torch.equal(other, first):
            option = "train_cfg.mode='shared'" if stage == 'train' else \
                f'{stage}_cfg.shared_images=True'
            fallback = "mode='unmixed'" if stage == 'train' else 'shared_images=False'
            raise ValueError(
                f"{option} needs every task's {stage} loader to yield the same images, but the "
                f"batch of '{task}' differs from that of '{tasks[0]}' (shapes "
                f"{tuple(other.shape)} and {tuple(first.shape)}). Give every task a dataset "
                f"over the same images in the same order, the same batch size and sampler, and "
                f"no random transform that changes pixels (RandomFlip); or use {fallback}.")
    return first


class _MultiTaskEvalLoop(BaseLoop):
    """Runs every task's dataloader through its own evaluator; keys become ``task/metric``.

    Args:
        shared_images: the tasks' loaders yield the same images in the same order (one image
            list, the same batch size, no shuffling), so each batch is encoded once for every
            task (:meth:`UP2Generalist.shared_encoding`); a batch whose images differ is an
            error naming the tasks.  Default False: each task runs its own loader.  A list of
            groups of task names (``[['replay_detection', 'replay_captioning'], ...]``): each
            group shares its images, the other tasks run their own loaders (a finetune's
            replayed tasks share the base's images, the user's tasks read their own).
    """

    stage = 'val'

    def __init__(self, runner, dataloader: dict, evaluator: dict,
                 shared_images: bool = False) -> None:
        self._runner = runner
        self.shared_images = shared_images
        loaders = _build_loaders(runner, dataloader)
        self.groups = _image_groups(shared_images, list(loaders), self.stage)
        if not isinstance(evaluator, dict) or set(evaluator) != set(loaders):
            raise ValueError(f'{self.stage}_evaluator must be dict(task=evaluator_cfg) with the '
                             f'same tasks as {self.stage}_dataloader {list(loaders)}; got '
                             f'{list(evaluator) if isinstance(evaluator, dict) else evaluator}')
        self.dataloader = _TaskLoaders(loaders)
        self.evaluators = {name: runner.build_evaluator(evaluator[name]) for name in loaders}
        for ev in self.evaluators.values():
            # This loop owns the prefix (`task/`): a metric's own default_prefix (mmdet's
            # CocoMetric says 'coco') would double it.
            for metric in ev.metrics:
                metric.prefix = ''
        for name, ev in self.evaluators.items():
            meta = getattr(loaders[name].dataset, 'metainfo', None)
            if meta is not None:
                ev.dataset_meta = meta

    def run(self) -> dict:
        stage = self.stage
        self.runner.call_hook(f'before_{stage}')
        self.runner.call_hook(f'before_{stage}_epoch')
        self.runner.model.eval()
        metrics: dict = {}
        grouped = {name: group for group in self.groups for name in group}
        for name in self.dataloader.loaders:
            group = grouped.get(name, [name])
            if name == group[0]:  # (a group runs where its first task stands)
                metrics.update(self._run_shared(group) if len(group) > 1 else
                               self._run_each([name]))
        self.dataloader.label = None
        self.runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{stage}')
        return metrics

    def _run_each(self, names: list[str]) -> dict:
        """Each task's own loader through the model, task after task."""
        stage = self.stage
        metrics: dict = {}
        for name in names:
            loader = self.dataloader.loaders[name]
            self.dataloader.current, self.dataloader.label = name, None
            evaluator = self.evaluators[name]
            processed = 0
            for idx, data_batch in enumerate(loader):
                self.runner.call_hook(f'before_{stage}_iter', batch_idx=idx,
                                      data_batch=data_batch)
                step = self.runner.model.val_step if stage == 'val' else \
                    self.runner.model.test_step
                with torch.no_grad():  # as MMEngine's own ValLoop / TestLoop
                    outputs = step(data_batch)
                evaluator.process(data_samples=outputs, data_batch=data_batch)
                processed += len(outputs)
                self.runner.call_hook(f'after_{stage}_iter', batch_idx=idx,
                                      data_batch=data_batch, outputs=outputs)
            task_metrics = self._evaluate(name, processed, len(loader.dataset))
            metrics.update({f'{name}/{key}': value for key, value in task_metrics.items()})
        return metrics


    def _run_shared(self, names: list[str]) -> dict:
        """Every task of ``names`` on each batch of the same images, encoded once."""
        stage = self.stage
        loaders = {name: self.dataloader.loaders[name] for name in names}
        self.dataloader.current = names[0]
        self.dataloader.label = None if len(names) == len(self.dataloader.loaders) else \
            f'{len(names)} tasks on the same images'
        lengths = {name: len(loader.dataset) for name, loader in loaders.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'{stage}_cfg.shared_images needs the {stage} sets of the tasks '
                             f'sharing images to hold the same images; their sizes differ: '
                             f'{lengths}')
        inner = getattr(self.runner.model, 'module', self.runner.model)
        processed = dict.fromkeys(loaders, 0)
        for idx, batches in enumerate(zip(*loaders.values())):
            batches = dict(zip(loaders, batches))
            self.runner.call_hook(f'before_{stage}_iter', batch_idx=idx, data_batch=batches)
            with torch.no_grad():
                data = {name: inner.data_preprocessor(b, False) for name, b in batches.items()}
                outputs = inner(same_images(data, stage),
                                {name: d['data_samples'] for name, d in data.items()},
                                mode='predict')
            for name, predicted in outputs.items():
                self.evaluators[name].process(data_samples=predicted, data_batch=batches[name])
                processed[name] += len(predicted)
            self.runner.call_hook(f'after_{stage}_iter', batch_idx=idx, data_batch=batches,
                                  outputs=outputs)
        metrics = {}
        for name, loader in loaders.items():
            task_metrics = self._evaluate(name, processed[name], len(loader.dataset))
            metrics.update({f'{name}/{key}': value for key, value in task_metrics.items()})
        return metrics

    def _evaluate(self, name: str, processed: int, size: int) -> dict:
        """``evaluate(size)`` of task ``name``'s evaluator, after checking that each metric
        holds one result per sample this process predicted.

        MMEngine's ``BaseMetric.evaluate(size)`` keeps the first ``size`` results (it drops the
        padding a distributed sampler adds): a metric that appends several results per sample
        would be cut to a prefix and report a number over part of the data, silently.
        """
        for metric in self.evaluators[name].metrics:
            held = len(metric.results)
            if held != processed:
                raise MetricResultsError(
                    f"metric {type(metric).__name__} of task '{name}' holds {held} results "
                    f"after {processed} predicted samples ({self.stage} set of {size}): its "
                    f"process() must append exactly one result per data sample (put a "
                    f"sample's several items, e.g. its phrases, in one result), or MMEngine's "
                    f"evaluate({size}) cuts the list and the metric covers part of the data")
        return self.evaluators[name].evaluate(size)


def _image_groups(shared_images, tasks: list[str], stage: str) -> list[list[str]]:
    """``shared_images`` as groups of tasks (see :class:`_MultiTaskEvalLoop`), checked."""
    if shared_images is True:
        return [tasks]
    if not shared_images:
        return []
    if isinstance(shared_images, (str, bytes)) or not all(
            isinstance(g, (list, tuple)) and g and all(isinstance(t, str) for t in g)
            for g in shared_images):
        raise ValueError(f'{stage}_cfg.shared_images: give True, False or a list of groups of '
                         f'task names, e.g. [{tasks[:2]}]; got {shared_images!r}')
    groups = [list(g) for g in shared_images]
    named = [t for g in groups for t in g]
    unknown = [t for t in named if t not in tasks]
    if unknown:
        raise ValueError(f'{stage}_cfg.shared_images: {unknown} are not tasks of the '
                         f'{stage}_dataloader; it has {tasks}')
    twice = sorted({t for t in named if named.count(t) > 1})
    if twice:
        raise ValueError(f'{stage}_cfg.shared_images: {twice} stand in more than one group')
    return groups


class MetricResultsError(UserError, RuntimeError):
    """A metric holds more or fewer results than samples were predicted (see
    :meth:`_MultiTaskEvalLoop._evaluate`)."""


@LOOPS.register_module()
class MultiTaskValLoop(_MultiTaskEvalLoop):
    """Validation over every task (config: ``val_cfg = dict(type='MultiTaskValLoop')``)."""

    stage = 'val'


@LOOPS.register_module()
class MultiTaskTestLoop(_MultiTaskEvalLoop):
    """Testing over every task (config: ``test_cfg = dict(type='MultiTaskTestLoop')``)."""

    stage = 'test'
