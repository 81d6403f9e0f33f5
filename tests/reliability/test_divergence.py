"""A diverging run stops with one clear line; nothing it leaves behind holds NaN."""

import pytest

from tests.conftest import ROOT, run_up2
from up2core.engine.checkpoint import verify_checkpoint

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_mt.py'


@pytest.mark.slow
def test_a_huge_learning_rate_stops_the_run_and_leaves_only_finite_checkpoints(tmp_path):
    work = tmp_path / 'work'
    result = run_up2('train', str(CONFIG), '--work-dir', str(work), '--cfg-options',
                     'optim_wrapper.optimizer.lr=1e6', '+train_cfg.max_nonfinite_steps=2',
                     sets=('toy',), cwd=tmp_path, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('up2: error: training diverged: 3 steps had a non-finite loss or '
                           'gradient (') and 'train_cfg.max_nonfinite_steps' in last
    assert 'Traceback' not in result.stderr
    assert 'the step was skipped' in result.stdout  # each skip logged with its task
    assert not (work / 'metrics.json').exists()  # no score for a diverged model
    for checkpoint in work.glob('*.pth'):
        verify_checkpoint(checkpoint, check_finite=True)
