"""Write the documentation's result tables from ``benchmarks/results/*.json``, or check them.

    python scripts/docs_tables.py           # rewrite every generated block
    python scripts/docs_tables.py --check   # exit 1 naming each block that differs

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` in a page
of ``docs/`` and is made by the ``table`` function of the benchmark script that wrote the JSON,
so a table is never copied by hand and cannot drift from its numbers
(``tests/docs/test_pages.py`` runs the check in the suite).  The ablation tables keep the
markers ``benchmarks/ablations.py --readme`` has always written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'


def _benchmark(name: str):
    """A script of ``benchmarks/`` as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f'_bench_{name}', ROOT / 'benchmarks' /
                                                  f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ablations() -> str:
    module = _benchmark('ablations')
    return module.tables(json.loads((RESULTS / 'ablations.json').read_text())['results'])


def _demo_load() -> str:
    rows = json.loads((RESULTS / 'demo_load.json').read_text())['rows']
    return _benchmark('demo_load').table(rows)


def _demo_load_request_threads() -> str:
    rows = json.loads((RESULTS / 'demo_load_request_threads.json').read_text())['rows']
    return _benchmark('demo_load').table(rows)


def _quality_two_tasks() -> str:
    return _benchmark('quality_shapes').table(
        json.loads((RESULTS / 'quality_shapes.json').read_text()))


def _caption_decoding() -> str:
    return _benchmark('caption_decoding').table(
        json.loads((RESULTS / 'caption_decoding.json').read_text()))


def _main_job_seeds() -> str:
    from up2core.config import load_config

    targets = dict(load_config('up2_tiny_shapes_generalist').targets)
    # the config states AP in the units UP2 reports (fractions), CIDEr x100, R@k in percent
    results = json.loads((RESULTS / 'ablations.json').read_text())['results']
    return _benchmark('ablations').seed_table(results, targets)


def _mt_adamw_step_size() -> str:
    return _benchmark('mt_adamw_step_size').table(
        json.loads((RESULTS / 'mt_adamw_step_size.json').read_text()))


def _inference_latency() -> str:
    return _benchmark('inference_latency').table(
        json.loads((RESULTS / 'inference_latency.json').read_text()))


#: (page, block name) -> what writes the block
BLOCKS: dict[tuple[str, str], Callable[[], str]] = {
    ('inference.md', 'inference_latency'): _inference_latency,
    ('inference.md', 'demo_load'): _demo_load,
    ('inference.md', 'demo_load_request_threads'): _demo_load_request_threads,
    ('own-data-measured.md', 'fashion_mnist'): lambda: _benchmark('fashion_mnist').table(),
    ('own-data-measured.md', 'new_names'): lambda: _benchmark('new_names').table(),
    ('results.md', 'quality_two_tasks'): _quality_two_tasks,
    ('getting-started.md', 'main_job_seeds'): _main_job_seeds,
    ('results.md', 'caption_decoding'): _caption_decoding,
    ('results.md', 'mt_adamw_step_size'): _mt_adamw_step_size,
}
ABLATION_MARKERS = ('<!-- ablations tables: benchmarks/ablations.py --readme -->',
                    '<!-- end of ablations tables -->')


def markers(name: str) -> tuple[str, str]:
    return f'<!-- generated: {name} -->', f'<!-- end: {name} -->'


def render(text: str, start: str, end: str, block: str, page: Path) -> str:
    if start not in text or end not in text:
        raise SystemExit(f'{page}: no block {start} ... {end}')
    head, rest = text.split(start, 1)
    return head + start + '\n' + block.rstrip() + '\n' + end + rest.split(end, 1)[1]


def pages() -> dict[Path, str]:
    """Every page with generated blocks, as it should read."""
    out: dict[Path, str] = {}
    for (page, name), make in BLOCKS.items():
        path = ROOT / 'docs' / page
        text = out.get(path, path.read_text())
        out[path] = render(text, *markers(name), make(), path)
    ablations = ROOT / 'docs' / 'ablations.md'
    out[ablations] = render(ablations.read_text(), *ABLATION_MARKERS, _ablations(), ablations)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--check', action='store_true', help='compare, write nothing')
    args = parser.parse_args(argv)
    stale = []
    for path, text in pages().items():
        if path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print('generated tables differ from benchmarks/results/*.json in: '
              + ', '.join(str(p.relative_to(ROOT)) for p in stale)
              + ' (run python scripts/docs_tables.py)', file=sys.stderr)
        return 1
    print(f'{len(stale)} page(s) {"differ" if args.check else "rewritten"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
