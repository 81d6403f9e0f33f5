"""Unmixed multi-task training as a whole: resume continues bit-identically; under torchrun the
ranks agree on every task and every parameter, and retrieval scores the other rank's items."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, plugin_set, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_mt.py'


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _record(work, rank=0):
    return json.loads((work / f'record_rank{rank}.json').read_text())


@pytest.mark.slow
def test_resume_in_the_middle_reaches_the_same_parameters(tmp_path):
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    _ok(run_up2('train', str(CONFIG), '--work-dir', str(straight), sets=('toy',), cwd=tmp_path))
    _ok(run_up2('train', str(CONFIG), '--work-dir', str(split), '--cfg-options',
                'train_cfg.max_iters=3', sets=('toy',), cwd=tmp_path))
    first_half = _record(split)['records']
    _ok(run_up2('train', str(CONFIG), '--work-dir', str(split), '--resume', sets=('toy',),
                cwd=tmp_path))
    whole, resumed = _record(straight), _record(split)
    tasks = [r['task'] for r in whole['records']]
    assert len(set(tasks)) == 2, tasks  # both tasks were drawn
    assert [r['task'] for r in first_half + resumed['records']] == tasks
    assert resumed['params'] == whole['params']  # bit-identical on the CPU


@pytest.mark.slow
def test_two_processes_agree_and_share_negatives(tmp_path):
    torchrun = shutil.which('torchrun') or str(__import__('pathlib').Path(sys.executable)
                                               .with_name('torchrun'))
    env = {**os.environ, 'PYTHONPATH': str(plugin_set('toy')), 'OMP_NUM_THREADS': '1'}
    work = tmp_path / 'dist'
    result = subprocess.run(
        [torchrun, '--nproc_per_node', '2', '--master_port', '29533', '-m', 'up2core.cli',
         'train', str(CONFIG), '--work-dir', str(work), '--launcher', 'pytorch'],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    _ok(result)
    rank0, rank1 = _record(work, 0), _record(work, 1)
    assert [r['task'] for r in rank0['records']] == [r['task'] for r in rank1['records']]
    assert rank0['params'] == rank1['params']
    retrieval = [r for r in rank0['records'] if r['task'] == 'retrieval']
    assert retrieval and all(r['candidates'] == 8 for r in retrieval)  # 2 ranks x batch 4


@pytest.mark.slow
def test_mixed_mode_steps_on_every_task_each_iteration(tmp_path):
    work = tmp_path / 'mixed'
    _ok(run_up2('train', str(CONFIG), '--work-dir', str(work), '--cfg-options',
                'train_cfg.max_iters=2', '+train_cfg.mode=mixed', 'default_hooks.logger.interval=1',
                sets=('toy',), cwd=tmp_path))
    (scalars,) = work.glob('*/vis_data/scalars.json')
    logs = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert len(logs) == 2
    for entry in logs:
        assert {'classification/loss_cls', 'retrieval/loss_i2t', 'retrieval/loss_t2i',
                'loss'} <= set(entry)
        expected = 0.5 * entry['classification/loss'] + 0.5 * entry['retrieval/loss']
        assert entry['loss'] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_two_nodes_on_loopback_agree_split_the_data_and_share_negatives(tmp_path):
    """The multi-node recipe of the README, as 2 "nodes" of 1 process each: two torchrun
    launches meeting through c10d rendezvous on 127.0.0.1."""
    torchrun = str(__import__('pathlib').Path(sys.executable).with_name('torchrun'))
    env = {**os.environ, 'PYTHONPATH': str(plugin_set('toy')), 'OMP_NUM_THREADS': '1'}
    work = tmp_path / 'nodes'
    nodes = [subprocess.Popen(
        [torchrun, '--nnodes', '2', '--nproc_per_node', '1', '--rdzv_backend', 'c10d',
         '--rdzv_endpoint', '127.0.0.1:29547', '--rdzv_id', 'up2-loopback',
         '-m', 'up2core.cli', 'train', str(CONFIG), '--work-dir', str(work),
         '--launcher', 'pytorch'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        for _ in range(2)]
    for node in nodes:
        out, err = node.communicate(timeout=900)
        assert node.returncode == 0, out[-3000:] + err[-5000:]
    rank0, rank1 = _record(work, 0), _record(work, 1)
    # the unmixed sampler draws the same task on every rank without communicating
    assert [r['task'] for r in rank0['records']] == [r['task'] for r in rank1['records']]
    assert rank0['params'] == rank1['params']  # gradients averaged across the nodes
    # each rank reads its own share of every task's data
    for a, b in zip(rank0['records'], rank1['records']):
        assert a['images'] and not set(a['images']) & set(b['images']), (a, b)
    retrieval = [r for r in rank0['records'] if r['task'] == 'retrieval']
    assert retrieval and all(r['candidates'] == 8 for r in retrieval)  # 2 nodes x batch 4
