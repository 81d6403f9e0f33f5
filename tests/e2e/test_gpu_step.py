"""``benchmarks/gpu_step.py``: one line and nothing measured without a GPU; its code path as a
CPU dry run on the tiny generalist (the GPU measurement itself never runs in the suite)."""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

SCRIPT = ROOT / 'benchmarks' / 'gpu_step.py'


def test_without_a_gpu_it_says_so_in_one_line_and_measures_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is present: the script would measure on it')
    out = tmp_path / 'gpu_step.json'
    result = subprocess.run([sys.executable, str(SCRIPT), '--out', str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        'gpu_step: no CUDA device here; nothing measured (--device cpu for a dry run)']
    assert not out.exists()


@pytest.mark.slow
def test_cpu_dry_run_gives_a_row_per_task_and_precision(tmp_path):
    out = tmp_path / 'gpu_step.json'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), '--device', 'cpu', '--config', 'up2_tiny_shapes_generalist',
         '--image-size', '64', '--steps', '1', '--out', str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    rows = record['rows']
    train = [(r['dtype'], r['task']) for r in rows if r['kind'] == 'train_step']
    tasks = ['classification', 'detection', 'segmentation', 'retrieval', 'captioning']
    assert train == [(d, t) for d in ('bf16', 'fp32') for t in tasks]
    assert all(r['finite'] and r['seconds'] > 0 for r in rows if r['kind'] == 'train_step')
    inference = [r for r in rows if r['kind'] == 'all_task_inference']
    assert [r['dtype'] for r in inference] == ['bf16', 'fp32']
    assert inference[0]['tasks'] == tasks
    assert record['device'] == 'cpu' and not record['skipped_for_budget']
