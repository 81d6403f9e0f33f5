"""Real kills, exact resume: ``up2 train`` SIGKILLed in every phase, resumed each time, ends
where an uninterrupted run ends, bit for bit.

The run (``tests/fixtures/configs/tiny_generalist_kill.py``): all five tasks of the main job,
shared images, 8 steps, a checkpoint every 2, a validation every 4, one dataloader worker per
task.  The fixture plugin ``killpoints`` (``tests/fixtures/plugin_sets/killpoints``) sends
SIGKILL at an exact point; one run is killed four times in a row, each time resumed with
``--resume`` and killed again in the next phase:

1. inside training step 3, after the backward pass, before the optimizer step;
2. from a dataloader worker, at the 5th batch it loads (the main process and the worker);
3. halfway through writing the next checkpoint (half the file on disk);
4. during the next validation, at its first batch (its checkpoint is written: the resumed run
   must run that validation again, or its metrics are lost);

then resumed to the end.  Asserted against the uninterrupted run: every weight, every tensor
of the optimizer state and the schedulers' state bit-identical; every validation in
``metrics.jsonl`` exactly once, with equal values; every training loss any of the runs logged
equal to the uninterrupted run's at that step.  Exact equality holds because every iteration
seeds torch's generator from (seed, iteration) and the loaders are advanced past the batches
already trained (``UnmixedTrainLoop``).
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_generalist_kill.py'
KILLS = ('step:3', 'data:5', 'checkpoint:1', 'eval:1')
_LOSS = re.compile(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\s loss: (\S+)')


def _train(tmp: Path, work: str, *extra: str, kill: str | None = None):
    env = {'UP2_KILL_AT': kill, 'UP2_KILL_MARK': str(tmp / 'kills.txt')} if kill else {}
    return run_up2('train', str(CONFIG), '--work-dir', str(tmp / work), *extra,
                   sets=('killpoints',), env=env, cwd=tmp, timeout=300)


def _losses(work: Path) -> list[tuple[int, str]]:
    """Every (step, loss) any run in ``work`` logged, in the order of its log files."""
    found = []
    for log in sorted(work.glob('*/*.log')):
        found += [(int(m[1]), m[2]) for m in _LOSS.finditer(log.read_text())]
    return found


def _same(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _same(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f'{where}[{index}]')
    else:
        assert a == b, where


@pytest.mark.slow
def test_killed_in_every_phase_and_resumed_ends_bit_identical(tmp_path):
    reference = _train(tmp_path, 'reference')
    assert reference.returncode == 0, reference.stderr[-3000:]
    for number, kill in enumerate(KILLS):
        killed = _train(tmp_path, 'killed', *(['--resume'] if number else []), kill=kill)
        assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-3000:])
    marks = (tmp_path / 'kills.txt').read_text().splitlines()
    assert [m.split(':')[0].split()[0] for m in marks] == ['step', 'data', 'checkpoint', 'eval']
    assert '.pth.partial half written' in marks[2]
    final = _train(tmp_path, 'killed', '--resume')
    assert final.returncode == 0, final.stderr[-3000:]

    ours = torch.load(tmp_path / 'killed' / 'iter_8.pth', weights_only=False)
    theirs = torch.load(tmp_path / 'reference' / 'iter_8.pth', weights_only=False)
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        _same(ours[part], theirs[part], part)
    assert ours['meta']['iter'] == theirs['meta']['iter'] == 8

    history = [json.loads(line) for line in
               (tmp_path / 'killed' / 'metrics.jsonl').read_text().splitlines()]
    expected = [json.loads(line) for line in
                (tmp_path / 'reference' / 'metrics.jsonl').read_text().splitlines()]
    assert [h['iter'] for h in expected] == [4, 8]
    assert history == expected  # each validation once, the same numbers

    # the run's results.csv (but its time column) and steps.jsonl: the uninterrupted run's
    from up2core.engine.results import read_table

    def table(work: Path) -> str:  # (repr: a nan metric equals itself)
        return repr([{k: v for k, v in row.items() if k != 'time'}
                     for row in read_table(work / 'results.csv')])

    assert [row['step'] for row in read_table(tmp_path / 'reference' / 'results.csv')] == [4, 8]
    assert table(tmp_path / 'killed') == table(tmp_path / 'reference')
    steps = (tmp_path / 'reference' / 'steps.jsonl').read_text()
    assert [json.loads(line)['step'] for line in steps.splitlines()] == list(range(1, 9))
    assert (tmp_path / 'killed' / 'steps.jsonl').read_text() == steps
    assert (tmp_path / 'killed' / 'results.png').stat().st_size > 10_000

    reference_losses = dict(_losses(tmp_path / 'reference'))
    assert sorted(reference_losses) == list(range(1, 9))
    logged = _losses(tmp_path / 'killed')
    assert {step for step, _ in logged} == set(range(1, 9))
    for step, loss in logged:
        assert loss == reference_losses[step], (step, loss, reference_losses[step])


@pytest.mark.slow
def test_a_full_disk_and_a_broken_last_checkpoint_each_get_one_line(tmp_path):
    """A real ENOSPC (the checkpoint's staging file is a link to ``/dev/full``, whose writes
    the kernel answers with 'No space left on device'): one ``up2: error:`` line naming the
    checkpoint and the one kept, exit 2; the kept one loads.  Then ``last_checkpoint`` naming
    a missing file, beside a truncated newer checkpoint: one line each, naming the checkpoint
    resumed from instead, and the run completes."""
    from up2core.engine.checkpoint import verify_checkpoint

    assert Path('/dev/full').exists()  # Linux's always-full device
    work = tmp_path / 'full'
    work.mkdir()
    (work / '.iter_4.pth.partial').symlink_to('/dev/full')
    full = _train(tmp_path, 'full')
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 2 and 'Traceback' not in full.stderr, full.stderr[-3000:]
    assert lines[-1].startswith('up2: error: could not write checkpoint iter_4.pth in ')
    assert 'no space left on device' in lines[-1]
    assert 'the previous checkpoint iter_2.pth is intact' in lines[-1]
    assert verify_checkpoint(work / 'iter_2.pth')['meta']['iter'] == 2
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert not (work / 'iter_4.pth').exists() and not (work / '.iter_4.pth.partial').exists()

    (work / 'iter_4.pth').write_bytes((work / 'iter_2.pth').read_bytes()[:5000])  # truncated
    (work / 'last_checkpoint').write_text(str(work / 'iter_6.pth'))  # names a missing file
    resumed = _train(tmp_path, 'full', '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith('up2: warning:')]
    assert len(warnings) == 2, warnings
    assert 'iter_6.pth' in warnings[0] and 'does not exist' in warnings[0]
    assert 'named by' in warnings[0] and 'last_checkpoint' in warnings[0]
    assert 'iter_4.pth' in warnings[1] and 'truncated' in warnings[1]
    assert all(line.endswith(f'resuming from {work / "iter_2.pth"} instead')
               for line in warnings)
    assert verify_checkpoint(work / 'iter_8.pth')['meta']['iter'] == 8
