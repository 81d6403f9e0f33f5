"""MT-AdamW on parameters sharded with FSDP2: the sharded step equals the unsharded one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

WORKER = Path(__file__).with_name('sharded_worker.py')


@pytest.mark.slow
def test_sharded_mt_adamw_steps_equal_the_unsharded_ones(tmp_path):
    torchrun = str(Path(sys.executable).with_name('torchrun'))
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    result = subprocess.run([torchrun, '--nproc_per_node', '2', '--master_port', '29541',
                             str(WORKER), str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        record = json.loads((tmp_path / f'rank{rank}.json').read_text())
        assert record['param_type'] == 'DTensor'
        # the moments are sharded with the parameters: each rank holds half of the rows
        assert record['exp_avg_local_shape'][0] * 2 == record['full_shape'][0]
        assert record['moved'] > 1e-3  # the models trained (a no-op would also be "equal")
        assert record['max_diff'] < 1e-6, record
