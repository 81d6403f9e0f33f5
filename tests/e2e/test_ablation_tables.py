"""``benchmarks/ablations.py``'s tables: a comparison row needs 3 seeds, the learning-rate sweep
shows seed 0 and picks each optimiser's learning rate from it (synthetic rows, nothing trained)."""

import importlib.util

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope='module')
def ablations():
    spec = importlib.util.spec_from_file_location('ablations', ROOT / 'benchmarks' / 'ablations.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(run: str, seed: int, top1: float, box: float = 0.5) -> dict:
    metrics = {'classification/top1': top1, 'detection/bbox_mAP': box,
               'segmentation/segm_mAP': 0.1, 'captioning/CIDEr': 50.0,
               **{f'retrieval/{d}_R@{k}': 50.0 for d in ('i2t', 't2i') for k in (1, 5, 10)}}
    return {'run': run, 'seed': seed, 'metrics': metrics, 'other_seed_metrics': metrics}


def _table(text: str, title: str) -> str:
    section = text.split(f'### {title}', 1)[1]
    return section.split('###', 1)[0]


def test_a_comparison_row_needs_three_seeds_and_the_others_are_named(ablations):
    rows = [_row('generalist', s, 90.0 + s) for s in range(3)]
    rows += [_row('dense', s, 80.0) for s in range(2)]
    rows += [_row('global_only', s, 70.0 + s) for s in range(3)]
    text = ablations.tables(rows)
    assert 'Decoder: Conditional MoE' not in text  # only the generalist would be shown
    table = _table(text, 'Image tokens of classification and retrieval')
    assert '| generalist | 3 | 91 ± 1 / 91 ± 1 |' in table
    assert '| global_only | 3 | 71 ± 1 / 71 ± 1 |' in table
    rows += [_row('alone_classification', s, 60.0) for s in range(2)]
    rows += [_row('alone_detection', s, 60.0) for s in range(3)]
    table = _table(ablations.tables(rows), 'Joint training vs each task alone')
    assert '| alone_detection | 3 |' in table
    assert '| alone_classification |' not in table
    assert 'Unfinished (fewer than 3 seeds, not shown): `alone_classification` (2).' in table


def test_the_sweep_shows_seed_zero_and_picks_each_optimisers_best_learning_rate(ablations):
    rows = [_row('mtadamw_lr2e-4', s, 80.0, box=0.4) for s in range(3)]
    rows += [_row('mtadamw_lr4e-4', 0, 20.0, box=0.01)]  # collapsed
    rows += [_row('adamw_lr4e-4', s, 70.0 + 10 * s, box=0.3) for s in range(3)]
    rows += [_row('adamw_lr8e-4', 0, 75.0, box=0.5)]  # better on seed 0, one seed so far
    by_run = {}
    for row in rows:
        by_run.setdefault(row['run'], []).append(row)
    picked = ablations.best_learning_rates(by_run)
    assert [name for _, name in picked] == ['mtadamw_lr2e-4', 'adamw_lr8e-4']
    text = ablations.tables(rows)
    sweep = _table(text, "Optimiser: learning-rate sweep (seed 0 only: it picks each "
                         "optimiser's learning rate)")
    assert '| adamw_lr4e-4 | 1 | 70 / 70 |' in sweep  # seed 0 alone, not the mean of 3
    best = _table(text, 'Optimiser: each at its own best learning rate')
    assert "| MT-AdamW (paper's coefficients), lr 2e-4 (mtadamw_lr2e-4) | 3 | 80 ± 0 /" in best
    assert '`adamw_lr8e-4` (1)' in best  # picked, but unfinished
