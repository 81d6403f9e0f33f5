"""A learning rate that collapses the likelihood: the run says so, and metrics.json records it."""

import json

import pytest

from tests.conftest import ROOT, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_shapes_e2e.py'


@pytest.mark.slow
def test_a_collapsing_learning_rate_is_reported_once_per_group(tmp_path):
    result = run_up2('train', str(CONFIG), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                     'optim_wrapper.optimizer.lr=0.05', 'train_cfg.max_iters=16',
                     '+train_cfg.learning_watch=dict(window=4)', cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    said = [line for line in log.splitlines() if "likelihood group 'classification'" in line]
    assert len(said) == 2, said  # collapse and chance, once each
    assert 'its candidates collapsed by iteration' in said[0]
    assert 'its loss has stayed at chance level' in said[1]
    metrics = json.loads((tmp_path / 'work' / 'metrics.json').read_text())
    assert 1 <= metrics['learning/classification/collapsed_at'] <= 16
