"""Per-image latency of exported task graphs on the CPU: eager PyTorch vs ONNX Runtime (and the
``torch.export`` program), side by side in one run.

    python benchmarks/export_latency.py --checkpoint work_dirs/demo/iter_260.pth \
        [--tasks classification detection] [--images 30] [--threads 2]

For each task the script exports the graph (``up2 export``'s :func:`export_task`, ONNX and
``.pt2``, into ``--out``), then times, image by image over ``--images`` Shapes val images
(the first of each path is a warm-up), alternating the paths so that a change of machine load
hits all of them alike:

* ``eager_api``: the inference API for that task alone (``iter_inference``: the test pipeline,
  the task's ``infer`` and its post-processing to the original image), what ``up2 infer`` runs;
* ``eager_graph``: the very graph that is exported (:class:`TaskGraph`), run by PyTorch eagerly
  on the prepared tensor;
* ``onnxruntime``: the ONNX file in ONNX Runtime's CPU provider, same tensor;
* ``exported_program``: the ``.pt2`` through ``torch.export.load(...).module()``, same tensor.

Medians in milliseconds, and each path's ratio to ``eager_graph``, go to
``benchmarks/results/export_latency.json``.  Threads: ``--threads`` for PyTorch and ONNX
Runtime alike.  Run it on an idle machine; a measurement, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results' / 'export_latency.json'


def _val_images(count: int) -> list[Path]:
    from up2core.data.shapes import ShapesSpec, generate_shapes

    folder = ROOT / 'data' / 'shapes' / 'images' / 'val'
    if not folder.is_dir():  # generate the val images (as the main job would)
        generate_shapes(ROOT / 'data' / 'shapes', ShapesSpec())
    return sorted(folder.glob('*.png'))[:count]


def measure(config: str, checkpoint: str | None, tasks: list[str], images: int, threads: int,
            out: Path) -> dict:
    import torch

    from up2core.apis.inference import init_model, iter_inference
    from up2core.export import ExportedGraph, TaskGraph, export_task, prepare_image

    torch.set_num_threads(threads)
    model = init_model(config, checkpoint)
    paths = _val_images(images)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for task in tasks:
        options = {'texts': ['a large red circle.', 'two small blue squares.',
                             'one green star in the centre.']} if task == 'retrieval' else {}
        onnx_file, program_file = out / f'{task}.onnx', out / f'{task}.pt2'
        export_task(model, task, onnx_file, format='onnx', **options)
        export_task(model, task, program_file, format='exported-program', **options)
        graph = TaskGraph(model, task, **options).eval()
        runners = {'onnxruntime': ExportedGraph(onnx_file, threads=threads),
                   'exported_program': ExportedGraph(program_file)}
        times: dict[str, list[float]] = {name: [] for name in
                                         ('eager_api', 'eager_graph', 'onnxruntime',
                                          'exported_program')}
        for index, path in enumerate(paths):
            pixels, _ = prepare_image(model, task, str(path), (128, 128))
            tensor = torch.from_numpy(pixels)
            order = list(times)
            order = order[index % len(order):] + order[:index % len(order)]  # rotate
            for name in order:
                start = time.perf_counter()
                with torch.no_grad():
                    if name == 'eager_api':
                        list(iter_inference(model, [str(path)], [task], 1, **options))
                    elif name == 'eager_graph':
                        graph(tensor)
                    else:
                        runners[name](pixels)
                if index > 0:  # the first image warms every path up
                    times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
        rows[task] = {'ms': {k: round(v, 2) for k, v in medians.items()},
                      'ratio_to_eager_graph': {k: round(v / medians['eager_graph'], 3)
                                               for k, v in medians.items()},
                      'onnx_mib': round(onnx_file.stat().st_size / 2**20, 1),
                      'images': len(paths) - 1}
        print(f"{task:<15} " + '  '.join(f'{k} {v:7.1f} ms' for k, v in medians.items()),
              flush=True)
    import onnxruntime

    return {'config': config, 'checkpoint': checkpoint, 'threads': threads,
            'torch': torch.__version__, 'onnxruntime': onnxruntime.__version__,
            'date': time.strftime('%Y-%m-%d'), 'tasks': rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='up2_tiny_shapes_generalist')
    parser.add_argument('--checkpoint', help='weights (default: random ones, for a dry run)')
    parser.add_argument('--tasks', nargs='+', default=['classification', 'detection'])
    parser.add_argument('--images', type=int, default=31)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default=str(ROOT / 'work_dirs' / 'export_latency'),
                        help='where the exported files go')
    parser.add_argument('--results', default=str(RESULTS))
    parser.add_argument('--note', default='', help='recorded with the numbers (e.g. "idle")')
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error('--images must be at least 2 (the first one warms up)')
    result = measure(args.config, args.checkpoint, args.tasks, args.images, args.threads,
                     Path(args.out))
    result['note'] = args.note
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=2) + '\n')
    print(f'saved to {args.results}', file=sys.stderr)
    return 0


def table(record: dict) -> str:
    """The saved latencies as a Markdown table: ms per image and the ratio to the graph run
    eagerly (docs/inference.md)."""
    paths = (('eager_api', 'inference API (eager, pipeline included)'),
             ('eager_graph', 'the graph, eager PyTorch'), ('onnxruntime', 'ONNX Runtime'),
             ('exported_program', '`.pt2` (`torch.export.load(...).module()`)'))
    lines = ['| task | ' + ' | '.join(label for _, label in paths) + ' |',
             '|---' * (len(paths) + 1) + '|']
    for task, row in record['tasks'].items():
        lines.append(f'| {task} | ' + ' | '.join(
            f"{row['ms'][key]:.1f} ms ({row['ratio_to_eager_graph'][key]:.2f}x)"
            for key, _ in paths) + ' |')
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
