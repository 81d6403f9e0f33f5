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


def _json(name: str):
    """``benchmarks/results/<name>.json``, read."""
    return json.loads((RESULTS / f'{name}.json').read_text())


def _table(script: str, results: str | None = None, key: str | None = None):
    """What writes a block that is ``script``'s ``table`` of its JSON (``results``, default the
    script's name; ``key``: that part of the JSON)."""
    def make() -> str:
        record = _json(results or script)
        return _benchmark(script).table(record if key is None else record[key])

    return make


def _ablations() -> str:
    return _benchmark('ablations').tables(_json('ablations')['results'])


def _main_job_seeds() -> str:
    from up2core.config import load_config

    targets = dict(load_config('up2_tiny_shapes_generalist').targets)
    # the config states AP in the units UP2 reports (fractions), CIDEr x100, R@k in percent
    return _benchmark('ablations').seed_table(_json('ablations')['results'], targets)


def _regions_seeds() -> str:
    det, seg = 'detection/bbox_mAP', 'segmentation/segm_mAP'
    return _benchmark('ablations').mean_table(_json('ablations')['results'], {
        'regions_sep_lr3e-4_450': 'lr 3e-4, separable pixel decoder (packaged)',
        'regions_lr3e-4_450': 'lr 3e-4, full 3 x 3 pixel decoder (packaged before)',
        'regions_lr1e-3_450': 'lr 1e-3, full 3 x 3 pixel decoder'}, [
        ('box AP / AP50 / AP75', [det, f'{det}_50', f'{det}_75']),
        ('box AP seen / novel', [f'{det}_seen', f'{det}_novel']),
        ('mask AP / AP50', [seg, f'{seg}_50']),
        ('mask AP seen / novel', [f'{seg}_seen', f'{seg}_novel'])])


def _quality(runs: dict[str, str], columns: list[tuple[str, str]]) -> str:
    return _benchmark('quality_shapes').metrics_table(_json('quality_shapes'), runs, columns)


_CLS = ('cls top-1 / top-5', '{classification/top1:.1f} / {classification/top5:.1f}')
_R = ('i2t R@1 / R@5 / R@10', '{retrieval/i2t_R@1:.1f} / {retrieval/i2t_R@5:.1f} / '
      '{retrieval/i2t_R@10:.1f}')
_T = ('t2i R@1 / R@5 / R@10', '{retrieval/t2i_R@1:.1f} / {retrieval/t2i_R@5:.1f} / '
      '{retrieval/t2i_R@10:.1f}')
_BOX = ('box AP (seen / novel)', '{detection/bbox_mAP:.3f} ({detection/bbox_mAP_seen:.3f} / '
        '{detection/bbox_mAP_novel:.3f})')
_MASK = ('mask AP (seen / novel)', '{segmentation/segm_mAP:.3f} '
         '({segmentation/segm_mAP_seen:.3f} / {segmentation/segm_mAP_novel:.3f})')


def _four_tasks() -> str:
    return _quality({'joint_mtadamw': 'two tasks (`up2_tiny_shapes`, above)',
                     'regions': 'detection + segmentation (above)',
                     'four_tasks': 'four tasks',
                     'four_tasks_lr2e-4': 'four tasks, lr 2e-4 (`--runs four_tasks_lr2e-4`)'},
                    [_CLS, _R, _T, ('rsum', '{retrieval/rsum:.1f}'), _BOX, _MASK])


def _five_tasks() -> str:
    return _quality({'captioning': 'captioning alone (`up2_tiny_shapes_captioning`)',
                     'four_tasks': 'four tasks, no captioning, lr 5e-4 (above)',
                     'four_tasks_lr2e-4': 'four tasks, no captioning, lr 2e-4',
                     'five_tasks': 'five tasks, lr 2e-4 (`up2_tiny_shapes_five_tasks`)',
                     'five_tasks_lr5e-4': 'five tasks, lr 5e-4 (`--runs five_tasks_lr5e-4`)'},
                    [('CIDEr', '{captioning/CIDEr:.1f}'), ('BLEU-4', '{captioning/BLEU-4:.1f}'),
                     ('ROUGE-L', '{captioning/ROUGE-L:.1f}'), ('BLEU-1', '{captioning/BLEU-1:.1f}'),
                     ('cls top-1', '{classification/top1:.1f}'),
                     ('rsum (i2t R@1)', '{retrieval/rsum:.1f} ({retrieval/i2t_R@1:.1f})'), _BOX,
                     ('mask AP', '{segmentation/segm_mAP:.3f}')])


def _train_profile() -> str:
    def run(name: str) -> dict:
        return _json(f'train_profile_{name}')

    unmixed = run('unmixed_five_tasks_no_channels_last')
    columns = [(f"unmixed: {task} (batch {unmixed['training'][task]['batch_size']})", unmixed,
                task) for task in ('classification', 'retrieval', 'detection', 'segmentation',
                                   'captioning')]
    columns += [('shared: 5 tasks (batch 16)', run('shared_only'), 'shared'),
                ('+ channels-last', run('shared_channels_last'), 'shared'),
                ('+ text encoder: top 2 layers', run('shared_channels_last_top2_text'), 'shared'),
                ('+ 2 captions per image (packaged)', run('generalist'), 'shared')]
    return _benchmark('train_profile').comparison_table(columns)


def _shared_vs_unmixed() -> str:
    return _quality({'generalist': 'shared images (`make demo`)', 'generalist_unmixed': 'unmixed'},
                    [('steps', '{iter}'), ('cls top-1', '{classification/top1:.1f}'),
                     ('i2t / t2i R@1', '{retrieval/i2t_R@1:.1f} / {retrieval/t2i_R@1:.1f}'),
                     ('box AP (novel)', '{detection/bbox_mAP:.3f} ({detection/bbox_mAP_novel:.3f})'),
                     ('mask AP', '{segmentation/segm_mAP:.3f}'),
                     ('CIDEr', '{captioning/CIDEr:.1f}')])


def _specialist(part: str) -> str:
    module = _benchmark('specialist_shapes')
    record = _json('specialist_shapes')
    if part == 'latency':
        return module.latency_table(record['latency_random_weights'])
    labels = {'regions_sep_lr3e-4_450': 'UP2 `up2_tiny_shapes_regions` (lr 3e-4, separable '
                                        'pixel decoder)',
              'regions_lr3e-4_450': 'UP2, full 3 x 3 pixel decoder (lr 3e-4)'}
    rows = [dict(r, model=labels[r['run']]) for r in module.up2_rows(list(labels))]
    rows += [dict(r, model=f"DINO, closed-set (lr {r['lr']:g})") for r in record['dino']
             if r['lr'] == 1e-3]
    return module.table(rows)


def _watching(part: str) -> str:
    """``up2 compare``'s tables of scripts/watching_pictures.py's runs, and what the files
    cost per validation."""
    if part != 'cost':
        return (RESULTS / f'watching_{part}.md').read_text()
    record = _json('watching')
    return ('| per validation | seconds |\n|---|---|\n'
            f"| `results.csv` + `results.png` ({record['rows']} rows, {record['steps']} steps) "
            f"| {record['results_files_s']:.2f} |\n"
            f"| predictions: 4 images, every task, drawn | {record['predictions_s']:.2f} |\n"
            f"| both | {record['per_validation_s']:.2f} |\n"
            f"| one validation of the main job (`up2 test`, for scale) | "
            f"{record['validation_s']:.1f} |\n"
            f"| ratio: both / validation | {record['x_validation']:.3f} |\n\n"
            f"({record['machine']}; idle: {record['idle']})\n")


#: (page, block name) -> what writes the block
BLOCKS: dict[tuple[str, str], Callable[[], str]] = {
    ('inference.md', 'inference_latency'): _table('inference_latency'),
    ('inference.md', 'export_latency'): _table('export_latency'),
    ('inference.md', 'demo_load'): _table('demo_load', key='rows'),
    ('inference.md', 'demo_load_request_threads'): _table('demo_load', 'demo_load_request_threads', 'rows'),
    ('own-data-measured.md', 'fashion_mnist'): lambda: _benchmark('fashion_mnist').table(),
    ('own-data-measured.md', 'new_names'): lambda: _benchmark('new_names').table(),
    ('own-data-measured.md', 'new_names_example'): lambda: (
        lambda module: module.table(module.DATASETS['example']))(_benchmark('new_names')),
    ('results.md', 'quality_two_tasks'): _table('quality_shapes'),
    ('results.md', 'regions_seeds'): _regions_seeds,
    ('results.md', 'four_tasks'): _four_tasks,
    ('results.md', 'five_tasks'): _five_tasks,
    ('results.md', 'model_size'): _table('model_size'),
    ('getting-started.md', 'main_job_seeds'): _main_job_seeds,
    ('main-job.md', 'train_profile'): _train_profile,
    ('ablations.md', 'specialist_detection'): lambda: _specialist('detection'),
    ('ablations.md', 'specialist_latency'): lambda: _specialist('latency'),
    ('main-job.md', 'shared_vs_unmixed'): _shared_vs_unmixed,
    ('results.md', 'caption_decoding'): _table('caption_decoding'),
    ('results.md', 'mt_adamw_step_size'): _table('mt_adamw_step_size'),
    ('watching.md', 'watching_seeds'): lambda: _watching('seeds'),
    ('watching.md', 'watching_finetune'): lambda: _watching('finetune'),
    ('watching.md', 'watching_cost'): lambda: _watching('cost'),
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
    out[ablations] = render(out.get(ablations, ablations.read_text()), *ABLATION_MARKERS,
                            _ablations(), ablations)
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
