"""``up2 infer``: every task (or one) of a trained model on images, folders or patterns;
results printed, streamed to JSON Lines and drawn, resumable."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from up2core.cli._common import EXIT_PARTIAL, loading_args
from up2core.errors import UserError


def add_parser(sub, with_plugin_options: bool = False) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
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
                   "segmentation); 'known': every name the checkpoint learnt for --task, a "
                   "finetune's and its base's; default: the config's test names")
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
    if extra.get('classes') == ['known']:
        extra['classes'] = known_names(getattr(model, 'card', None), args.task)
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


def known_names(card: dict | None, task: str | None) -> list[str]:
    """``--classes known``: the names ``card`` lists for ``task``, then those its base lists
    for it (a finetune's: old and new names in one call), each once."""
    if task is None:
        raise UserError('--classes known needs --task: the names of which task')
    names: list[str] = []
    card = card or {}
    for known in ((card.get('names') or {}).get(task),
                  ((card.get('base') or {}).get('names') or {}).get(task)):
        for name in (known or {}).get('classes') or []:
            if name not in names:
                names.append(name)
    if not names:
        raise UserError(f'--classes known: the checkpoint\'s card lists no names for {task}; '
                        f'give them: --classes "a,b"')
    return names


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
