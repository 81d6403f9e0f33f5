"""Where a training step (and an evaluation) of a UP2 config spends its time, per task.

    python benchmarks/train_profile.py [--config up2_tiny_shapes_five_tasks] [--steps 6]
        [--warmup 2] [--eval-batches 2] [--label before] [--cfg-options K=V ...]

For every task of the config, ``--warmup`` untimed steps, then ``--steps`` timed training steps,
each split into:

* ``data``: waiting for the task's dataloader (workers load and transform ahead);
* ``preprocess``: the model's data preprocessor (normalise, pad, stack);
* ``image backbone``, ``image neck``; the region proposals' ``encoder``, ``decoder`` and
  ``mask branch`` (pixel decoder + mask embeddings), ``proposals: other`` (query selection,
  heads, token building);
* ``proposal loss``: Hungarian matching + the proposal network's losses;
* ``text encoder`` and ``shared decoder`` on a task's inputs (image tokens, captions);
* ``candidate encoding``: class names, category names, vocabulary tokens through the text
  encoder and the shared decoder (a task's ``*_features`` of its candidate set, all inclusive);
* ``likelihood``: cosine logits + cross-entropy (``model.likelihood``);
* ``forward: other``: whatever the forward pass does outside the parts above;
* ``backward``, ``optimizer step`` (the optim wrapper's, gradient clipping and the non-finite
  guard included).

Nested parts are counted exclusively (the shared decoder inside candidate encoding counts as
candidate encoding).  Then, for every task, ``--eval-batches`` validation batches (0: the whole
val set) through ``val_step`` and the task's metric: seconds per image of prediction, and the
metric's own time.  Times are medians over the timed steps (per-step seconds), on whatever the
machine is doing: run it on an idle machine.  JSON goes to
``benchmarks/results/train_profile[_LABEL].json``; a measurement, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

#: candidate-set methods of the built-in tasks (their time is counted as candidate encoding)
CANDIDATE_METHODS = ('class_features', 'name_features', 'candidate_features',
                     'sentence_features')


class PartTimer:
    """Exclusive wall time per named part of a forward pass.

    ``part(name)`` regions nest; a region's time minus its children's is added to its name.
    Inside an *absorbing* region (candidate encoding) nested regions are not split out.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []
        self._absorbing = 0

    @contextmanager
    def part(self, name: str, absorb: bool = False):
        if self._absorbing:
            yield
            return
        entry = [name, time.perf_counter(), 0.0]
        self._stack.append(entry)
        self._absorbing += int(absorb)
        try:
            yield
        finally:
            self._absorbing -= int(absorb)
            self._stack.pop()
            elapsed = time.perf_counter() - entry[1]
            self.totals[name] += elapsed - entry[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def wrap(self, obj, method: str, name: str, absorb: bool = False) -> None:
        """Time ``obj.method`` (an instance attribute shadowing the class's method)."""
        original = getattr(obj, method)

        def timed(*args, **kwargs):
            with self.part(name, absorb):
                return original(*args, **kwargs)

        setattr(obj, method, timed)

    def take(self) -> dict[str, float]:
        out, self.totals = dict(self.totals), defaultdict(float)
        return out


def instrument(model, timer: PartTimer) -> None:
    """Wrap the model's parts (those it has) with ``timer``."""
    encoder = model.image_encoder
    timer.wrap(encoder.backbone, 'forward', 'image backbone')
    timer.wrap(encoder.neck, 'forward', 'image neck')
    generator = encoder.proposal_generator
    if generator is not None:
        timer.wrap(generator, 'forward', 'proposals: other')
        timer.wrap(generator.encoder, 'forward', 'proposals: encoder')
        timer.wrap(generator.decoder, 'forward', 'proposals: decoder')
        timer.wrap(generator.pixel_decoder, 'forward', 'proposals: mask branch')
        timer.wrap(generator, '_masks', 'proposals: mask branch')
        timer.wrap(generator, 'loss', 'proposal loss')
    for method in ('forward', 'encode_ids', 'embed_ids'):
        if hasattr(model.text_encoder, method):
            timer.wrap(model.text_encoder, method, 'text encoder')
    for method in ('forward', 'extend'):
        timer.wrap(model.decoder, method, 'shared decoder')
    for method in ('logits', 'loss', 'predict'):
        timer.wrap(model.likelihood, method, 'likelihood')
    for task in model.tasks.values():
        for method in CANDIDATE_METHODS:
            if hasattr(task, method):
                timer.wrap(task, method, 'candidate encoding', absorb=True)


def build_runner(config: str, cfg_options: list[str], work_dir: str):
    """A Runner with everything :meth:`Runner.train` sets up before its loop runs."""
    from up2core.cli import _build_runner
    from up2core.config import check_config, load_config

    cfg = load_config(config, cfg_options)
    check_config(cfg)
    cfg.setdefault('default_scope', 'up2core')
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    runner = _build_runner(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
    runner._init_model_weights()
    runner.optim_wrapper.initialize_count_status(runner.model, 0, runner.train_loop.max_iters)
    runner.train_loop.nonfinite_guard.install(runner.optim_wrapper)
    return runner


def _next_batch(loop, task: str):
    """(preprocessable batch, forward kwargs maker) of one step of ``task`` (or of every task
    on shared images, task ``'shared'``)."""
    if task != 'shared':
        loop.current_task = task
        loop._announce(task)
        return next(loop._iterators[task])
    return {name: next(loop._iterators[name]) for name in loop.tasks}


def _preprocess(model, loop, batch):
    if not (isinstance(batch, dict) and set(batch) == set(loop.tasks)):
        return model.data_preprocessor(batch, True)
    from up2core.engine.loops import same_images

    data = {name: model.data_preprocessor(b, True) for name, b in batch.items()}
    return {'inputs': same_images(data),
            'data_samples': {name: d['data_samples'] for name, d in data.items()}}


def _total_loss(model, loop, losses):
    if not isinstance(next(iter(losses.values())), dict):
        return model.parse_losses(losses)[0]
    return sum(model.parse_losses(task_losses)[0] * loop.sampling_ratios[name]
               for name, task_losses in losses.items())


def profile_training(runner, timer: PartTimer, steps: int, warmup: int) -> dict:
    """Per-part medians of ``steps`` training steps of every task (``mode='shared'``: of the
    one step that trains every task on the same images)."""
    loop, model, wrapper = runner.train_loop, runner.model, runner.optim_wrapper
    result = {}
    tasks = ['shared'] if getattr(loop, 'mode', 'unmixed') == 'shared' else loop.tasks
    for task in tasks:
        per_step: list[dict[str, float]] = []
        for index in range(warmup + steps):
            model.train()
            start = time.perf_counter()
            batch = _next_batch(loop, task)
            times = {'data': time.perf_counter() - start}
            start = time.perf_counter()
            with wrapper.optim_context(model):
                data = _preprocess(model, loop, batch)
                times['preprocess'] = time.perf_counter() - start
                timer.take()
                start = time.perf_counter()
                losses = model(**data, mode='loss')
                forward = time.perf_counter() - start
            parts = timer.take()
            loss = _total_loss(model, loop, losses)
            times.update(parts)
            times['forward: other'] = max(forward - sum(parts.values()), 0.0)
            start = time.perf_counter()
            wrapper.backward(loss)
            times['backward'] = time.perf_counter() - start
            start = time.perf_counter()
            wrapper.step()
            wrapper.zero_grad()
            times['optimizer step'] = time.perf_counter() - start
            if index >= warmup:
                per_step.append(times)
        keys = sorted({k for t in per_step for k in t})
        medians = {k: statistics.median(t.get(k, 0.0) for t in per_step) for k in keys}
        medians['total'] = statistics.median(sum(t.values()) for t in per_step)
        one = next(iter(batch.values())) if task == 'shared' else batch
        batch_size = len(one['data_samples'])
        result[task] = {'batch_size': batch_size, 'seconds': medians}
        print(f'[train_profile] {task}: {medians["total"]:.3f} s/step (batch {batch_size})',
              flush=True)
    return result


def profile_shared_evaluation(runner, timer: PartTimer, max_batches: int) -> dict:
    """``val_cfg.shared_images=True``: every task on each batch, the images encoded once."""
    from up2core.engine.loops import same_images

    loop, model = runner.val_loop, runner.model
    model.eval()
    loaders = loop.dataloader.loaders
    images, predict = 0, 0.0
    timer.take()
    start = time.perf_counter()
    with torch.no_grad():
        for index, batches in enumerate(zip(*loaders.values())):
            if max_batches and index >= max_batches:
                break
            batches = dict(zip(loaders, batches))
            step_start = time.perf_counter()
            data = {name: model.data_preprocessor(b, False) for name, b in batches.items()}
            outputs = model(same_images(data, 'val'),
                            {name: d['data_samples'] for name, d in data.items()},
                            mode='predict')
            predict += time.perf_counter() - step_start
            for name, predicted in outputs.items():
                loop.evaluators[name].process(data_samples=predicted, data_batch=batches[name])
            images += len(next(iter(outputs.values())))
    loading = time.perf_counter() - start - predict
    parts = timer.take()
    metric = {}
    for name in loaders:
        metric_start = time.perf_counter()
        loop.evaluators[name].evaluate(images)
        metric[name] = time.perf_counter() - metric_start
    total_images = len(next(iter(loaders.values())).dataset)
    scale = total_images / max(images, 1)
    print(f'[train_profile] eval, every task on shared images: '
          f'{predict / max(images, 1) * 1000:.1f} ms/image', flush=True)
    return {'shared': {'images': images, 'predict_s_per_image': predict / max(images, 1),
                       'data_s': loading, 'metric_s': metric,
                       'predict_parts_s': {k: round(v, 4) for k, v in parts.items()},
                       'estimated_full_eval_s': (predict + loading + sum(metric.values()))
                       * scale}}


def profile_evaluation(runner, timer: PartTimer, max_batches: int) -> dict:
    """Per task: prediction time per image and the metric's time (``max_batches`` batches)."""
    loop = runner.val_loop
    if getattr(loop, 'shared_images', False) is True:
        return profile_shared_evaluation(runner, timer, max_batches)
    model = runner.model
    model.eval()
    result = {}
    for task, loader in loop.dataloader.loaders.items():
        evaluator = loop.evaluators[task]
        images, predict = 0, 0.0
        timer.take()
        start = time.perf_counter()
        with torch.no_grad():
            for index, batch in enumerate(loader):
                if max_batches and index >= max_batches:
                    break
                step_start = time.perf_counter()
                outputs = model.val_step(batch)
                predict += time.perf_counter() - step_start
                evaluator.process(data_samples=outputs, data_batch=batch)
                images += len(outputs)
        loading = time.perf_counter() - start - predict
        parts = timer.take()
        start = time.perf_counter()
        evaluator.evaluate(images)
        metric = time.perf_counter() - start
        total_images = len(loader.dataset)
        result[task] = {'images': images, 'predict_s_per_image': predict / max(images, 1),
                        'data_s': loading, 'metric_s': metric,
                        'predict_parts_s': {k: round(v, 4) for k, v in parts.items()},
                        'estimated_full_eval_s': (predict + loading) / max(images, 1)
                        * total_images + metric * total_images / max(images, 1)}
        print(f'[train_profile] eval {task}: {predict / max(images, 1) * 1000:.1f} ms/image, '
              f'metric {metric:.2f} s for {images} images', flush=True)
    return result


def print_table(training: dict) -> None:
    tasks = list(training)
    parts = ['data', 'preprocess', 'image backbone', 'image neck', 'proposals: encoder',
             'proposals: decoder', 'proposals: mask branch', 'proposals: other', 'proposal loss',
             'text encoder', 'shared decoder', 'candidate encoding', 'likelihood',
             'forward: other', 'backward', 'optimizer step', 'total']
    print('| part | ' + ' | '.join(tasks) + ' |')
    print('|---|' + '---|' * len(tasks))
    for part in parts:
        cells = [training[t]['seconds'].get(part) for t in tasks]
        if all(c is None or c < 5e-4 for c in cells) and part != 'total':
            continue
        print(f'| {part} | ' + ' | '.join('–' if c is None else f'{c:.3f}' for c in cells)
              + ' |')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='up2_tiny_shapes_five_tasks')
    parser.add_argument('--steps', type=int, default=6, help='timed steps per task')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per task first')
    parser.add_argument('--eval-batches', type=int, default=2,
                        help='validation batches per task (0: all; -1: no evaluation)')
    parser.add_argument('--checkpoint', help='weights to load first (evaluation of a trained '
                        'model differs: a detector that is sure of little keeps more boxes)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    parser.add_argument('--label', default='', help='suffix of the JSON file (before/after...)')
    parser.add_argument('--note', default='', help='a line kept in the JSON (machine state...)')
    args = parser.parse_args(argv)

    import up2core  # noqa: F401  (registries, plugins, up2:: configs)

    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_runner(args.config, args.cfg_options, work_dir)
        model = runner.model
        if args.checkpoint:
            from mmengine.runner import load_checkpoint

            from up2core.engine.checkpoint import allow_mmengine_checkpoints

            allow_mmengine_checkpoints()
            load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
        timer = PartTimer()
        instrument(model, timer)
        training = profile_training(runner, timer, args.steps, args.warmup)
        evaluation = profile_evaluation(runner, timer, args.eval_batches) \
            if args.eval_batches >= 0 else {}
    print_table(training)
    out = ROOT / 'benchmarks' / 'results' / \
        f"train_profile{'_' + args.label if args.label else ''}.json"
    record = {'config': args.config, 'cfg_options': args.cfg_options, 'steps': args.steps,
              'warmup': args.warmup, 'torch_threads': torch.get_num_threads(),
              'cpus': os.cpu_count(), 'machine': platform.processor() or platform.machine(),
              'python': sys.version.split()[0], 'torch': torch.__version__, 'note': args.note,
              'training': training, 'evaluation': evaluation}
    out.write_text(json.dumps(record, indent=2) + '\n')
    print(f'[train_profile] wrote {out.relative_to(ROOT)}')
    return 0


#: the parts of a step, in the order the comparison table lists them
TABLE_PARTS = ('data', 'preprocess', 'image backbone', 'image neck', 'proposals: encoder',
               'proposals: decoder', 'proposals: mask branch', 'proposals: other',
               'proposal loss', 'text encoder', 'shared decoder', 'candidate encoding',
               'likelihood', 'forward: other', 'backward', 'optimizer step')


def comparison_table(columns: list[tuple[str, dict, str]], shared_tasks: int = 5) -> str:
    """Seconds per part of a step, side by side: ``columns`` are (label, a saved run, the
    task key of its ``training``: a task name, or ``'shared'`` for one step over
    ``shared_tasks`` tasks).  The last row counts task-samples per second (one image's
    annotations of one task) (docs/main-job.md)."""
    cells = [record['training'][task] for _, record, task in columns]
    lines = ['| part (s) | ' + ' | '.join(label for label, _, _ in columns) + ' |',
             '|---|' + '---:|' * len(columns)]
    for part in TABLE_PARTS:
        values = [c['seconds'].get(part) for c in cells]
        lines.append(f'| {part} | ' + ' | '.join('–' if v is None else f'{v:.2f}'
                                                  for v in values) + ' |')
    lines.append('| **total** | ' + ' | '.join(f"**{c['seconds']['total']:.2f}**"
                                                for c in cells) + ' |')
    rates = [c['batch_size'] * (shared_tasks if task == 'shared' else 1) / c['seconds']['total']
             for c, (_, _, task) in zip(cells, columns)]
    lines.append('| task-samples / s | ' + ' | '.join(f'{r:.1f}' for r in rates) + ' |')
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
