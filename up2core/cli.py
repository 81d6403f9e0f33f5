"""The ``up2`` command line: train, test, infer, plugins, registry, data.

``up2 train`` and ``up2 test`` drive MMEngine's Runner on a config (a path, or the name of a
packaged config); ``up2 plugins`` and ``up2 registry`` show what the plugins contributed;
``up2 data shapes`` writes the embedded Shapes dataset.

Errors a user can fix (a missing config, an unknown key or registry name, a malformed override, a
plugin that failed under ``UP2_STRICT_PLUGINS=1``, unreadable data) print one ``up2: error:`` line
and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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


# --------------------------------------------------------------------------- train / test


def _prepare_config(args: argparse.Namespace):
    from up2core.config import check_config, load_config

    if getattr(args, 'overwrite_data', False):
        from up2core.data.prepare import OVERWRITE_ENV

        os.environ[OVERWRITE_ENV] = '1'  # read where the datasets prepare their data
    cfg = load_config(args.config, args.cfg_options, tasks=args.tasks)
    if getattr(args, 'data', None):
        from up2core.data.dataset_file import apply_data_file, load_data_file

        need = ('train',) if args.func is cmd_train else ('val',)
        data = load_data_file(args.data)
        if args.tasks:  # --tasks a,b picks among the file's tasks too
            kept = [t.strip() for t in args.tasks.split(',') if t.strip()]
            data.tasks = {t: source for t, source in data.tasks.items() if t in kept}
            if not data.tasks:
                raise UserError(f'--tasks {args.tasks}: {args.data} names none of them')
        apply_data_file(cfg, data, need=need, replay=getattr(args, 'replay', None))
    elif getattr(args, 'replay', None) is not None:
        raise UserError('--replay mixes the config\'s own data back into training on yours: '
                        'give your data with --data')
    if getattr(args, 'freeze', None):
        cfg.model['freeze'] = list(args.freeze)  # (item: addict's Dict has a freeze method)
    check_config(cfg)  # types and task names, before a minute of Runner set-up
    cfg.setdefault('default_scope', 'up2core')
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(str(args.config)).stem)
    return cfg


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
    if not any(h.get('type') in ('ConsoleProgressHook', 'up2core.ConsoleProgressHook')
               for h in hooks if isinstance(h, dict)):
        # the console's progress lines, whatever the config (one not based on UP2's runtime)
        cfg.custom_hooks = hooks + [dict(type='ConsoleProgressHook')]
    _cpu_distributed(cfg)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS

        return RUNNERS.build(cfg)
    from up2core.engine.runner import UP2Runner

    return UP2Runner.from_cfg(cfg)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _prepare_config(args)
    if args.amp:
        import torch

        if not torch.cuda.is_available():
            raise UserError('--amp needs a CUDA device (MMEngine\'s AmpOptimWrapper does not run '
                            'on the CPU); drop --amp to train in fp32.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        from up2core.engine.checkpoint import latest_valid_checkpoint

        found, skipped = latest_valid_checkpoint(cfg.work_dir)
        fallback = f'resuming from {found} instead' if found is not None else \
            f'no valid checkpoint in {cfg.work_dir}: training starts from the beginning'
        for reason in skipped:  # one line each: what is wrong, and what is used instead
            print(f'up2: warning: {reason}; {fallback}', file=sys.stderr)
        cfg.resume = found is not None
        cfg.load_from = None if found is None else str(found)
        if found is None and not skipped:
            print(f'up2: {fallback}', file=sys.stderr)
    elif args.resume is not None:
        from up2core.engine.checkpoint import verify_checkpoint

        verify_checkpoint(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    if args.load_from is not None:
        if args.resume is not None:
            raise UserError('--load-from starts a new run from the weights of a checkpoint; '
                            '--resume continues a run: give one of them')
        from up2core.engine.checkpoint import verify_checkpoint

        verify_checkpoint(args.load_from, check_finite=True)
        cfg.load_from, cfg.resume = args.load_from, False
    if cfg.get('up2_data') is not None and not args.skip_data_check:
        _check_training_data(cfg, args)
    runner = _build_runner(cfg)
    if args.load_from is not None:
        from up2core.engine.checkpoint import load_report

        report = load_report(runner.model, args.load_from)
        print(f'up2: load report of {args.load_from}: {report.summary()}', file=sys.stderr,
              flush=True)
        (Path(cfg.work_dir) / 'load_report.json').parent.mkdir(parents=True, exist_ok=True)
        (Path(cfg.work_dir) / 'load_report.json').write_text(
            json.dumps(report.as_dict(), indent=2) + '\n')
    runner.train()
    _print_final_metrics(Path(cfg.work_dir) / 'metrics.json', runner.iter, cfg.get('targets'))
    _print_files(runner)
    return 0


def _print_files(runner) -> None:
    """Where a run's results are: its last checkpoint, metrics and log file."""
    work_dir = Path(runner.work_dir)
    lines = []
    last = work_dir / 'last_checkpoint'
    if last.is_file():
        lines.append(f'checkpoint  {last.read_text().strip()}')
    if (work_dir / 'metrics.json').is_file():
        lines.append(f"metrics     {work_dir / 'metrics.json'}")
    log = getattr(runner.logger, 'log_file', None)
    if log:
        lines.append(f'log         {log}')
    if lines:
        print('\nFiles:\n' + '\n'.join(f'  {line}' for line in lines), flush=True)


def _print_final_metrics(path: Path, iteration: int, targets: dict | None) -> None:
    """The last validation as one table, against the config's ``targets`` when it has them."""
    from up2core.evaluation.targets import metrics_table

    if not path.is_file():
        return
    metrics = json.loads(path.read_text())
    if metrics.get('iter') != iteration:  # no validation in this run: an older file
        return
    print(f'\nValidation after {iteration} iterations ({path}):', flush=True)
    print(metrics_table(metrics, targets), flush=True)


def cmd_test(args: argparse.Namespace) -> int:
    from up2core.engine.checkpoint import check_fits, verify_checkpoint

    verify_checkpoint(args.checkpoint, check_finite=True)  # a diverged model scores nothing
    cfg = _prepare_config(args)
    cfg.load_from = args.checkpoint
    _set_report_dirs(cfg, Path(cfg.work_dir))
    runner = _build_runner(cfg)
    report = check_fits(runner.model, args.checkpoint, partial=args.partial_load)
    if report.untrained_tasks and not args.partial_load:
        trained = [t for t in runner.model.tasks if t not in report.untrained_tasks]
        raise UserError(f"checkpoint '{args.checkpoint}' was trained without task(s) "
                        f"{', '.join(report.untrained_tasks)}, so it cannot be scored on them; "
                        f"test the tasks it trained: --tasks {','.join(trained)}")
    if not report.exact or report.untrained_tasks:
        print(f'up2: warning: --partial-load: {report.summary()}', file=sys.stderr)
    metrics = runner.test()
    flat = {k: (v.item() if hasattr(v, 'item') else v) for k, v in (metrics or {}).items()}
    print(json.dumps(flat, indent=2, sort_keys=True))
    _write_test_summary(Path(cfg.work_dir), flat, args)
    if args.out_metrics:
        out = Path(args.out_metrics)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(flat, indent=2, sort_keys=True) + '\n')
    return 0


def _check_training_data(cfg, args: argparse.Namespace) -> None:
    """The record-level checks of ``up2 data check`` on the data a run is about to train on:
    a fault refuses the run with the check's summary, unless ``--skip-bad-records`` drops the
    faulty records (from copies: the user's files are never changed)."""
    from up2core.data.check import check_data, skip_bad_records
    from up2core.data.dataset_file import load_data_file

    data = load_data_file(args.data)
    report = check_data(data, images=True, text_limit=None)
    if not report.errors:
        return
    if not args.skip_bad_records:
        raise UserError(f'{args.data} has faults that training would trip on: '
                        f'{report.one_line()}; run `up2 data check {args.data}` for the list, '
                        f'fix them, or add --skip-bad-records to train without those records')
    dropped = skip_bad_records(cfg, report, Path(cfg.work_dir) / 'data')
    print(f'up2: --skip-bad-records: training without {dropped} (cleaned copies in '
          f"{Path(cfg.work_dir) / 'data'}; your files are unchanged)", file=sys.stderr)


def _set_report_dirs(cfg, work_dir: Path) -> None:
    """Metrics that write per-class reports (``report_dir``) write them under the work dir."""
    from up2core.registry import METRICS

    for key in ('test_evaluator',):
        evaluators = cfg.get(key)
        if not isinstance(evaluators, dict) or 'type' in evaluators:
            continue
        for task, metric in evaluators.items():
            kind = METRICS.get(metric.get('type')) if isinstance(metric, dict) else None
            if kind is not None and getattr(kind, 'writes_reports', False):
                metric['report_dir'] = str(work_dir / 'reports' / task)


def _write_test_summary(work_dir: Path, flat: dict, args: argparse.Namespace) -> None:
    """``<work_dir>/test_summary.json``: the metrics by task, with the checkpoint and data."""
    summary: dict = {'checkpoint': str(args.checkpoint), 'data': args.data, 'tasks': {}}
    for key, value in flat.items():
        if isinstance(value, float) and value != value:
            value = None  # NaN (undefined, e.g. AP of an absent size range): null in JSON
        task, _, metric = key.partition('/')
        summary['tasks'].setdefault(task, {})[metric or task] = value
    reports = work_dir / 'reports'
    if reports.is_dir():
        summary['reports'] = sorted(str(p) for p in reports.rglob('*') if p.is_file())
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'test_summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(f"up2: per-task summary: {work_dir / 'test_summary.json'}"
          + (f'; per-class reports under {reports}' if reports.is_dir() else ''),
          file=sys.stderr)


def _infer_kwargs(args: argparse.Namespace) -> dict:
    extra: dict = {'texts': args.texts}
    for dest in getattr(args, 'plugin_infer_options', ()):
        extra[dest] = getattr(args, dest, None)
    if args.classes is not None:
        extra['classes'] = [c.strip() for c in args.classes.split(',') if c.strip()]
        if not extra['classes']:
            raise UserError(f'--classes {args.classes!r} names no category; give '
                            f'comma-separated names, e.g. --classes "red star,blue circle"')
    if args.beam is not None:
        if args.beam < 1:
            raise UserError(f'--beam {args.beam}: the beam size must be at least 1 '
                            f'(1 is greedy search)')
        extra['beam'] = args.beam
    return extra


def _done_images(results: Path) -> set[str]:
    """Images that already have a line in a JSON Lines results file.  A last line without its
    newline was cut by an interrupted run: it is removed (its image is done again)."""
    text = results.read_text()
    if text and not text.endswith('\n'):
        text = text[:text.rfind('\n') + 1]
        with results.open('r+') as handle:
            handle.truncate(len(text.encode()))
    done = set()
    for line in text.splitlines():
        try:
            done.add(json.loads(line)['image'])
        except (ValueError, KeyError, TypeError):
            continue
    return done


class _Progress:
    """Images done, images/s and ETA on stderr: redrawn in place on a terminal, otherwise a
    line at every tenth of the way."""

    def __init__(self, total: int) -> None:
        import time

        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._next_line = 0

    def step(self) -> None:
        import time

        self.done += 1
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        eta = (self.total - self.done) / rate
        text = (f'[infer] {self.done}/{self.total} images  {rate:.2f} images/s  '
                f'ETA {int(eta // 60)}:{int(eta % 60):02d}')
        if self.tty:
            print('\r' + text, end='\n' if self.done == self.total else '', file=sys.stderr,
                  flush=True)
        elif self.done >= self._next_line or self.done == self.total:
            print(text, file=sys.stderr, flush=True)
            self._next_line = self.done + max(1, self.total // 10)


def cmd_infer(args: argparse.Namespace) -> int:
    from up2core.apis.inference import (
        expand_images,
        init_model,
        iter_inference,
        record_of,
        resolve_tasks,
        runnable_tasks,
    )

    images = expand_images(args.images)
    single = len(args.images) == 1 and len(images) == 1 and Path(args.images[0]).is_file()
    out_file = out_dir = None
    if args.out:
        if Path(args.out).suffix.lower() in ('.png', '.jpg', '.jpeg', '.bmp'):
            if not single:
                raise UserError(f'--out {args.out}: a picture file is for one image; give a '
                                f'folder to draw {len(images)} images')
            out_file = Path(args.out)
        else:
            out_dir = Path(args.out)
    results = Path(args.results) if args.results else \
        (out_dir / 'results.jsonl' if out_dir is not None else None)
    if args.resume and results is None:
        raise UserError('--resume continues a results file: give --results FILE or --out DIR')
    done: set[str] = set()
    if results is not None and results.exists() and results.stat().st_size:
        if not args.resume:
            raise UserError(f'{results} exists: add --resume to skip the images it holds, or '
                            f'remove it')
        done = _done_images(results)
    if args.batch_size < 1:
        raise UserError(f'--batch-size {args.batch_size}: must be at least 1')
    extra = _infer_kwargs(args)
    # Libraries print while loading weights; keep stdout for the results alone.
    with contextlib.redirect_stdout(sys.stderr):
        model = init_model(args.config, args.checkpoint, device=args.device,
                           cfg_options=args.cfg_options, data=args.data,
                           partial=args.partial_load)
    _print_card(model, args.data)
    if args.task is not None and args.task not in model.tasks:
        raise UserError(f"--task {args.task}: the model has no such task; it has "
                        f"{', '.join(model.tasks)}")
    tasks = resolve_tasks(model, args.task)
    runnable = runnable_tasks(model, tasks, extra)
    if not runnable:
        needs = sorted({a for t in tasks for a in model.tasks[t].infer_requires})
        options = ', '.join('--' + need.replace('_', '-') for need in needs)
        example = " (e.g. --texts 'a red circle' 'two blue squares')" if 'texts' in needs else ''
        raise UserError(f"task {', '.join(tasks)} needs {options}{example}")
    todo = [image for image in images if image not in done]
    if done:
        print(f'up2: --resume: {len(images) - len(todo)} of {len(images)} images are in '
              f'{results} already', file=sys.stderr)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    progress = _Progress(len(todo)) if not single else None
    failed = 0
    stdout = sys.stdout
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(results.open('a')) if results is not None else None
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))  # library chatter
        for name, array, samples in iter_inference(model, todo, runnable, args.batch_size,
                                                   **extra):
            record = record_of(model, name, samples)
            if 'error' in record:
                if single:
                    raise UserError(record['error'])
                failed += 1
                print(f'up2: {record["error"]}', file=sys.stderr)
            elif out_file is not None or out_dir is not None:
                from up2core.apis.visualization import draw_results

                target = out_file or out_dir / f'{Path(name).stem}.png'
                try:
                    draw_results(model, array, samples, str(target))
                except NotImplementedError as exc:
                    raise UserError(f'--out: {exc}') from None
                record['visualisation'] = str(target)
            if sink is not None:
                sink.write(json.dumps(record) + '\n')
                sink.flush()
            _print_record(model, record, args, stdout)
            if progress is not None:
                progress.step()
    if not single:
        where = f' (their lines in {results} say why)' if failed and results else ''
        print(f'up2: infer: {len(todo) - failed} images answered, {failed} skipped{where}',
              file=sys.stderr)
    # 1, not the usage errors' 2: the run went through, but not every image has an answer
    return EXIT_PARTIAL if failed else 0


def _print_card(model, data: str | None) -> None:
    """What the checkpoint was trained on (stderr), and a warning when the names it will
    predict among are not the ones it learnt."""
    from up2core.engine.data_card import card_lines

    card = getattr(model, 'card', None)
    if card is None and getattr(model, 'cfg', None) is None:
        return
    for line in card_lines(card):
        print(f'up2: model: {line}', file=sys.stderr)
    for task, names in ((card or {}).get('names') or {}).items():
        known = set(names.get('classes') or []) if isinstance(names, dict) else set()
        current = model.tasks[task].data_names().get('classes') if task in model.tasks else None
        if known and current and not set(current) & known:
            print(f"up2: warning: {task} predicts among {', '.join(current[:3])}..., none of "
                  f"which this checkpoint was trained on"
                  + ('' if data else '; give its dataset file with --data to use its names'),
                  file=sys.stderr)


def _print_record(model, record: dict, args: argparse.Namespace, stream) -> None:
    if 'error' in record:
        if args.json:
            print(json.dumps(record), file=stream, flush=True)
        return
    results = record['results']
    if args.json:
        if args.task is not None and len(args.images) == 1 and Path(args.images[0]).is_file():
            # one image, one task: that task's plain result, as before all-task inference
            print(json.dumps({'task': args.task, **results[args.task]}, indent=2),
                  file=stream, flush=True)
        else:
            print(json.dumps(record), file=stream, flush=True)
        return
    if len(results) == 1:
        (task,) = results
        print(f"{record['image']}  [{task}]", file=stream)
        lines = model.tasks[task].format_result({'task': task, **results[task]})
    else:
        print(record['image'], file=stream)
        lines = []
        for task in results:
            lines.append(f'  [{task}]')
            lines += ['  ' + line for line in
                      model.tasks[task].format_result({'task': task, **results[task]})]
    for line in lines:
        print(line, file=stream)
    if record.get('visualisation'):
        print(f"visualisation: {record['visualisation']}", file=stream)
    stream.flush()


# --------------------------------------------------------------------------- deployment


def cmd_export(args: argparse.Namespace) -> int:
    from up2core.apis.inference import init_model
    from up2core.export import FORMATS, export_task

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f'{out} exists: add --overwrite to replace it')
    options: dict = {}
    if args.classes is not None:
        options['classes'] = [c.strip() for c in args.classes.split(',') if c.strip()]
        if not options['classes']:
            raise UserError(f'--classes {args.classes!r} names no category; give '
                            f'comma-separated names, e.g. --classes "red star,blue circle"')
    if args.texts:
        options['texts'] = args.texts
    if args.format not in FORMATS:
        raise UserError(f"--format {args.format}: use one of {', '.join(FORMATS)}")
    with contextlib.redirect_stdout(sys.stderr):
        model = init_model(args.config, args.checkpoint, cfg_options=args.cfg_options,
                           data=args.data, partial=args.partial_load)
    if args.task not in model.tasks:
        raise UserError(f"--task {args.task}: the model has no such task; it has "
                        f"{', '.join(model.tasks)}")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            info = export_task(model, args.task, out, format=args.format,
                               image_size=tuple(args.image_size), max_batch=args.max_batch,
                               **options)
    except NotImplementedError as exc:
        raise UserError(f'--task {args.task}: {exc}') from None
    size = out.stat().st_size / 2**20
    print(f"{out}  ({info['format']}, {size:.1f} MiB, {info['export_seconds']} s)")
    print(f"  input   images float32 [batch<={args.max_batch}, 3, {args.image_size[0]}, "
          f"{args.image_size[1]}] RGB 0-255")
    print(f"  outputs {', '.join(info['outputs'])}")
    print(f'  described in {out}.json')
    return 0


def _check_bindable(host: str, port: int) -> None:
    """Raise a UserError when the demo could not listen on ``host:port`` (in use, no such host)."""
    import socket

    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UserError(f'cannot serve on {host}:{port}: {reason.lower()}; pick another '
                            f'--port (or --host)') from None


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: FastAPI's form parser)
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UserError(f"up2 demo needs the demo extra ({exc.name} is missing): "
                        f"pip install 'up2[demo]'") from None
    from up2core.demo.app import serve
    from up2core.demo.service import DemoService

    if not 0 < args.port < 65536:
        raise UserError(f'--port {args.port}: give a port from 1 to 65535')
    _check_bindable(args.host, args.port)  # before the model loads, not after
    with contextlib.redirect_stdout(sys.stderr):
        service = DemoService(args.config, args.checkpoint, cfg_options=args.cfg_options,
                              data=args.data, partial=args.partial_load)
    if args.host not in ('127.0.0.1', 'localhost', '::1'):
        print(f'up2: warning: --host {args.host} makes the demo reachable from other machines; '
              f'it has no authentication', file=sys.stderr)
    print(f'UP2 demo of {args.config} ({", ".join(service.model.tasks)}) on '
          f'http://{args.host}:{args.port}/  (Ctrl+C stops it)', flush=True)
    serve(service, host=args.host, port=args.port)
    return 0


# --------------------------------------------------------------------------- discovery


def cmd_plugins(args: argparse.Namespace) -> int:
    from up2core import PLUGIN_API_VERSION, __version__
    from up2core.plugin import list_plugins

    infos = list_plugins()
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print('No UP2 plugins installed (entry-point group "up2.plugins").')
    print(f'UP2 {__version__}, plugin API {PLUGIN_API_VERSION}')
    for info in infos:
        dist = f'{info.distribution} {info.version}' if info.distribution else '(not installed)'
        api = f'api {info.api_version or "?"}'
        print(f'{info.name}  [{info.status}]  {dist}  {api}  -> {info.value}')
        if info.status == 'loaded' and info.api_status != 'current':
            print(f'    warning: {info.api_note}')
        if info.hooks:
            print(f"    hooks: {', '.join(info.hooks)}")
        for kind, names in info.registered.items():
            print(f"    {kind}: {', '.join(names)}")
        if info.error:
            print(f'    error: {info.error}')
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    from up2core.registry import REGISTRIES, registry_by_name

    if args.kind == 'configs':
        from up2core.config import list_configs

        configs = {name: str(path) for name, path in list_configs().items()}
        print(json.dumps(configs, indent=2) if args.json else
              '\n'.join(f'{n}  {p}' for n, p in configs.items()) or '(no configs)')
        return 0
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    table: dict[str, dict[str, str]] = {}
    for kind in kinds:
        try:
            reg = registry_by_name(kind)
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        reg.import_from_location()
        table[kind] = {name: reg.owners.get(name, '?') for name in sorted(reg.module_dict)}
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for kind, names in table.items():
        if args.kind is None and not names:
            continue
        print(f'{kind} ({len(names)}):')
        for name, owner in names.items():
            print(f'    {name}  [{owner}]')
        if not names:
            print('    (empty)')
    return 0


# --------------------------------------------------------------------------- data


def cmd_data_shapes(args: argparse.Namespace) -> int:
    from up2core.data.shapes import ShapesSpec, generate_shapes

    spec = ShapesSpec(num_train=args.num_train, num_val=args.num_val,
                      image_size=args.image_size, seed=args.seed)
    summary = generate_shapes(args.out, spec, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0


DATA_HELP = """Your own data is declared in a dataset file, used as `up2 train CONFIG --data
DATA.yaml` (and by `up2 test`, `up2 infer`, `up2 data ...`).  Keys per task, any subset; paths
relative to `path` (default: the file's folder):

{example}

COCO instances json (any category ids, polygons or RLE); image-folder trees with an optional
classes.txt of readable names; captions as COCO json, JSON Lines or CSV rows of image and
caption.  `up2 data example --out DIR` writes a small dataset of this kind to try it on."""


def _data_example() -> str:
    from up2core.data.dataset_file import EXAMPLE

    return '\n'.join('  ' + line for line in EXAMPLE.splitlines())


def cmd_data_check(args: argparse.Namespace) -> int:
    from up2core.data.check import check_data, text_counter
    from up2core.data.dataset_file import load_data_file

    data = load_data_file(args.data)
    with contextlib.redirect_stdout(sys.stderr):
        limit, count = text_counter(args.config)
    report = check_data(data, images=not args.no_images, hash_images=args.hash,
                        text_limit=limit, count_tokens=count)
    for line in report.lines():
        print(line)
    errors = sum(len(v) for v in report.errors.values())
    warnings = sum(len(v) for v in report.warnings.values())
    print(f'{args.data}: {report.records} records and {report.images} images checked: '
          f'{errors} errors, {warnings} warnings')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2) + '\n')
    return EXIT_USAGE if errors else 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from up2core.data.dataset_file import load_data_file
    from up2core.data.pictures import data_stats, draw_stats

    data = load_data_file(args.data)
    stats = data_stats(data)
    out = Path(args.out)
    draw_stats(stats, out)
    out.with_suffix('.json').write_text(json.dumps(stats, indent=2) + '\n')
    print(f"stats of {args.data}: {out} (numbers: {out.with_suffix('.json')})")
    return 0


def cmd_data_browse(args: argparse.Namespace) -> int:
    from up2core.data.pictures import browse

    if args.num < 1:
        raise UserError(f'--num {args.num}: must be at least 1')
    with contextlib.redirect_stdout(sys.stderr):
        written = browse(args.data, args.config, args.out, split=args.split, num=args.num)
    print(f'{len(written)} pictures in {args.out}')
    return 0


def cmd_data_example(args: argparse.Namespace) -> int:
    from up2core.data.example import write_example_data

    path = write_example_data(args.out, args.num_train, args.num_val, overwrite=args.overwrite)
    print(f'example data in {args.out}; its dataset file: {path}')
    return 0


# --------------------------------------------------------------------------- parser


def _add_plugin_infer_options(parser: argparse.ArgumentParser) -> None:
    """Options plugins add to ``up2 infer`` (hook ``up2_infer_arguments``), in their own group
    each; the dests they add are recorded so that their values reach ``Task.infer``."""
    from up2core.plugin import get_plugin_manager

    dests: list[str] = []
    impls = sorted(get_plugin_manager().hook.up2_infer_arguments.get_hookimpls(),
                   key=lambda impl: impl.plugin_name)
    for impl in impls:
        group = parser.add_argument_group(f"options of plugin '{impl.plugin_name}'")
        before = {action.dest for action in parser._actions}
        try:
            impl.function(parser=group)
        except argparse.ArgumentError as exc:
            raise UserError(f"plugin '{impl.plugin_name}' adds an up2 infer option that "
                            f"exists already: {exc}; rename it in the plugin") from None
        dests += [action.dest for action in parser._actions if action.dest not in before]
    parser.set_defaults(plugin_infer_options=tuple(dests))


def build_parser(with_plugin_options: bool = False) -> argparse.ArgumentParser:
    """The ``up2`` parser; ``with_plugin_options`` adds the options plugins give ``up2 infer``
    (that loads the plugins, so only an ``infer`` command line asks for it)."""
    from up2core import __version__

    parser = argparse.ArgumentParser(
        prog='up2', description='UP2: Uni-Perceiver v2, one generalist model for vision and '
        'vision-language tasks, as a core plus task plugins.')
    parser.add_argument('--version', action='version', version=f'up2 {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    def loading_args(p: argparse.ArgumentParser, data_help: str | None) -> None:
        if data_help is not None:  # (the runner commands have --data already)
            p.add_argument('--data', metavar='DATA.yaml', help=data_help)
        p.add_argument('--partial-load', action='store_true', help='load a checkpoint that does '
                       'not fit the config exactly (what fits; the rest stays random)')

    def runner_args(p: argparse.ArgumentParser, default_config: str | None = None) -> None:
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

    p = sub.add_parser('train', help='train a model from a config')
    runner_args(p, default_config=MAIN_JOB_CONFIG)
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                   help='resume from CKPT, or without a value from the last checkpoint in the '
                   'work dir')
    p.add_argument('--amp', action='store_true', help='mixed-precision training (CUDA only)')
    p.add_argument('--load-from', metavar='CKPT', help='start from the weights of CKPT '
                   '(finetuning; a new run, unlike --resume) and print what loaded')
    p.add_argument('--skip-bad-records', action='store_true',
                   help='with --data: train without the records `up2 data check` finds faulty '
                   '(from copies; your files are unchanged) instead of refusing')
    p.add_argument('--skip-data-check', action='store_true',
                   help='with --data: do not check the data before training')
    p.add_argument('--replay', type=float, metavar='WEIGHT',
                   help="with --data: keep training every task of the config on the config's "
                   'own data too (tasks replay_<task>, evaluated too), sampled at WEIGHT x the '
                   "task's weight: less forgetting of what the checkpoint knew")
    p.add_argument('--freeze', nargs='+', metavar='MODULE',
                   help='submodules to keep fixed, by dotted path, e.g. image_encoder.backbone '
                   'text_encoder (model.freeze)')
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('test', help='evaluate a checkpoint on the config\'s test sets')
    runner_args(p)
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('--out-metrics', metavar='PATH', help='write the metrics as flat JSON')
    loading_args(p, None)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser('infer', help='predict every task (or one) on images with a trained '
                       'model',
                       epilog='An image that cannot be read or answered is reported in one '
                       'line and skipped; the others go on. Exit status: 0 every image '
                       'answered, 1 some skipped (the last line counts them), 2 a usage error.')
    p.add_argument('config', help='config file, or the name of a packaged config')
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('images', nargs='+', metavar='IMAGE',
                   help='image files, folders of images, or glob patterns')
    p.add_argument('--task', help='one task to run (default: every task of the model; '
                   'retrieval needs --texts)')
    p.add_argument('--texts', nargs='+', help='candidate texts to rank (retrieval)')
    p.add_argument('--classes', help='comma-separated category names to look for (detection, '
                   'segmentation); default: the config\'s test names')
    p.add_argument('--beam', type=int, help='beam size (captioning; 1: greedy search; '
                   'default: the config\'s)')
    p.add_argument('--out', help='a folder: one picture per image with every output drawn, '
                   'and results.jsonl; or, for one image, a picture file (.png, .jpg)')
    p.add_argument('--results', metavar='FILE', help='JSON Lines file, one line per image, '
                   'written as images are done (default with --out: OUT/results.jsonl)')
    p.add_argument('--resume', action='store_true',
                   help='skip the images the results file holds already, append the others')
    p.add_argument('--batch-size', type=int, default=8, help='images per forward pass')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', default=[])
    p.add_argument('--json', action='store_true', help='print results as JSON (one line per '
                   'image for several)')
    loading_args(p, "your own data's dataset file: its tasks and names")
    if with_plugin_options:
        _add_plugin_infer_options(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser('export', help="export one task's inference graph (ONNX or a "
                       'torch.export program)')
    p.add_argument('config', help='config file, or the name of a packaged config')
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('--task', required=True, help='the task whose graph to export')
    p.add_argument('--format', default='onnx', help='onnx (default; run it with onnxruntime) '
                   'or exported-program (torch.export.save, a .pt2)')
    p.add_argument('--out', required=True, help='the file to write (and OUT.json describing '
                   'its input and outputs)')
    p.add_argument('--classes', help='comma-separated names baked into the graph '
                   "(classification, detection, segmentation; default: the config's)")
    p.add_argument('--texts', nargs='+', help='candidate texts baked into the graph (retrieval)')
    p.add_argument('--image-size', nargs=2, type=int, default=[128, 128], metavar=('H', 'W'),
                   help='input height and width, fixed in the graph (default: 128 128)')
    p.add_argument('--max-batch', type=int, default=64, help='largest batch the graph takes')
    p.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', default=[])
    loading_args(p, "your own data's dataset file: its names")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser('demo', help='a local web page running every task on your images '
                       "(pip install 'up2[demo]')")
    p.add_argument('config', help='config file, or the name of a packaged config')
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--host', default='127.0.0.1', help='address to bind (default: this machine '
                   'only)')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', default=[])
    loading_args(p, "your own data's dataset file: its names")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser('plugins', help='list task plugins, their hooks and registered names')
    p.add_argument('--json', action='store_true')
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser('registry', help='list registered names per registry (or "configs")')
    p.add_argument('kind', nargs='?', help='a registry (tasks, datasets, metrics, models, ...) '
                   'or "configs"; all registries when omitted')
    p.add_argument('--json', action='store_true')
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser('data', help='check, picture and browse your own data; generate '
                       'datasets', description=DATA_HELP.format(example=_data_example()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data_sub = p.add_subparsers(dest='dataset', required=True, metavar='COMMAND')
    s = data_sub.add_parser('check', help="check every record and image header of a dataset "
                            'file (errors exit 2)')
    s.add_argument('data', metavar='DATA.yaml')
    s.add_argument('--json', metavar='REPORT', help='also write every finding as JSON')
    s.add_argument('--no-images', action='store_true', help='check the annotation files only')
    s.add_argument('--hash', action='store_true', help='also find images that are in train '
                   'and val (reads whole files)')
    s.add_argument('--config', default='up2_tiny_shapes_generalist', help='whose text '
                   'encoder limits caption and name lengths (default: the main job\'s)')
    s.set_defaults(func=cmd_data_check)
    s = data_sub.add_parser('stats', help='a picture of the data: instances per class and '
                            'split, box sizes and aspects, caption lengths')
    s.add_argument('data', metavar='DATA.yaml')
    s.add_argument('--out', required=True, help='the picture to write (.png; its numbers go '
                   'to OUT.json)')
    s.set_defaults(func=cmd_data_stats)
    s = data_sub.add_parser('browse', help='samples after the training pipeline, with boxes, '
                            'masks, names and captions drawn')
    s.add_argument('data', metavar='DATA.yaml')
    s.add_argument('--out', required=True, help='folder for the pictures')
    s.add_argument('--config', default='up2_tiny_shapes_generalist',
                   help="whose training pipelines to apply (default: the main job's)")
    s.add_argument('--split', default='train', choices=['train', 'val'])
    s.add_argument('--num', type=int, default=8, help='samples per task')
    s.set_defaults(func=cmd_data_browse)
    s = data_sub.add_parser('example', help="an example of your own data: Shapes re-exported "
                            'in the layouts users have, under new names, with its data.yaml')
    s.add_argument('--out', required=True, help='output folder')
    s.add_argument('--num-train', type=int, default=200)
    s.add_argument('--num-val', type=int, default=50)
    s.add_argument('--overwrite', action='store_true', help='replace an existing folder')
    s.set_defaults(func=cmd_data_example)
    s = data_sub.add_parser('shapes', help='the embedded Shapes dataset (deterministic)')
    s.add_argument('--out', required=True, help='output folder')
    s.add_argument('--num-train', type=int, default=2000)
    s.add_argument('--num-val', type=int, default=300)
    s.add_argument('--image-size', type=int, default=128)
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--overwrite', action='store_true', help='replace an existing dataset')
    s.set_defaults(func=cmd_data_shapes)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    from up2core.config import ConfigError
    from up2core.errors import CheckpointError, DataError, NonFiniteTrainingError, TaskMismatchError
    from up2core.plugin import PluginLoadError
    from up2core.registry import RegistryConflictError, UnknownNameError

    return (UserError, ConfigError, PluginLoadError, RegistryConflictError, UnknownNameError,
            FileExistsError, FileNotFoundError, DataError, TaskMismatchError,
            NonFiniteTrainingError, CheckpointError)


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


def _fail(message: Any) -> int:
    text = str(message).strip()
    if 'Original Traceback' in text:
        # Raised in a DataLoader worker: torch re-raises it with the worker's traceback in the
        # message; its last line is ours ("up2core.errors.DataError: <message>").
        text = text.splitlines()[-1].split(': ', 1)[-1]
    print(f'up2: error: {text}', file=sys.stderr)
    return EXIT_USAGE


if __name__ == '__main__':  # python -m up2core.cli
    sys.exit(main())
