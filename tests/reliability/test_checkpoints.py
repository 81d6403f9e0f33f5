"""Checkpoints: atomic writes that survive a kill, and every unusable file named with its fault."""

import os
import pickle
from collections import deque
from types import SimpleNamespace

import pytest
import torch
from mmengine.fileio import LocalBackend

from up2core.engine.checkpoint import latest_valid_checkpoint, verify_checkpoint
from up2core.engine.hooks import AtomicCheckpointHook
from up2core.errors import CheckpointError


def _state(value=1.0):
    return {'meta': {'iter': 1}, 'state_dict': {'w': torch.full((64, 64), value)}}


def _save(path, value=1.0):
    torch.save(_state(value), path)
    return path


def test_a_good_checkpoint_verifies(tmp_path):
    assert verify_checkpoint(_save(tmp_path / 'iter_1.pth'), check_finite=True)['meta'] == \
        {'iter': 1}


def test_a_truncated_checkpoint_is_named_as_truncated(tmp_path):
    path = _save(tmp_path / 'iter_2.pth')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r"'.*iter_2\.pth' cannot be used: it is truncated"):
        verify_checkpoint(path)


def test_an_empty_checkpoint_is_named_as_empty(tmp_path):
    (tmp_path / 'iter_3.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r"iter_3\.pth' is empty \(0 bytes\)"):
        verify_checkpoint(tmp_path / 'iter_3.pth')


class _Payload:
    def __reduce__(self):
        return (os.system, ('echo hostile > /dev/null',))


def test_a_hostile_pickle_is_refused_with_its_name_and_without_running(tmp_path):
    path = tmp_path / 'hostile.pth'
    with open(path, 'wb') as f:
        torch.save({'state_dict': {}, 'x': _Payload()}, f)
    with pytest.raises(CheckpointError, match=r"hostile\.pth' cannot be used: it holds Python "
                                              r"objects that would run code.*(posix|os)\.system"):
        verify_checkpoint(path)
    legacy = tmp_path / 'legacy.pth'  # a plain pickle, not a torch zip archive
    legacy.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError, match=r"legacy\.pth' cannot be used"):
        verify_checkpoint(legacy)


def test_non_finite_weights_are_refused_where_finite_ones_are_needed(tmp_path):
    path = _save(tmp_path / 'nan.pth', float('nan'))
    verify_checkpoint(path)  # readable ...
    with pytest.raises(CheckpointError, match=r"nan\.pth' holds non-finite weights in 1 of 1 "
                                              r"tensors \(e.g. w\)"):
        verify_checkpoint(path, check_finite=True)  # ... but not for evaluation or inference


def test_resume_takes_the_newest_valid_checkpoint_and_reports_the_others(tmp_path):
    _save(tmp_path / 'iter_2.pth')
    newest = _save(tmp_path / 'iter_4.pth')
    newest.write_bytes(newest.read_bytes()[:100])
    (tmp_path / 'last_checkpoint').write_text(str(newest))
    found, skipped = latest_valid_checkpoint(tmp_path)
    assert found == tmp_path / 'iter_2.pth'
    assert len(skipped) == 1 and 'iter_4.pth' in skipped[0] and 'truncated' in skipped[0]
    (tmp_path / 'last_checkpoint').write_text('')  # an empty pointer is not an error either
    assert latest_valid_checkpoint(tmp_path)[0] == tmp_path / 'iter_2.pth'
    assert latest_valid_checkpoint(tmp_path / 'nothing_here') == (None, [])


class _KilledWhileWriting(BaseException):
    """Stands in for SIGKILL: nothing after the partial write runs."""


def _hook_and_runner(tmp_path, max_keep_ckpts=1, kill_at=None):
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=max_keep_ckpts)
    hook.out_dir, hook.file_backend = str(tmp_path), LocalBackend()
    hook.keep_ckpt_ids = deque([], maxlen=max_keep_ckpts)

    def save_checkpoint(out_dir, filename, *args, meta=None, **kwargs):
        checkpoint = _state(float(meta['iter']))
        hook.before_save_checkpoint(runner, checkpoint)
        path = os.path.join(out_dir, filename)
        if meta['iter'] == kill_at:
            torch.save(checkpoint, path)
            data = open(path, 'rb').read()
            open(path, 'wb').write(data[:len(data) // 3])
            raise _KilledWhileWriting
        torch.save(checkpoint, path)

    hub = SimpleNamespace(update_info=lambda *a, **k: None)
    runner = SimpleNamespace(work_dir=str(tmp_path), message_hub=hub, iter=0,
                             save_checkpoint=save_checkpoint)
    return hook, runner


def test_a_kill_while_writing_keeps_the_previous_checkpoint_with_max_keep_one(tmp_path):
    hook, runner = _hook_and_runner(tmp_path, max_keep_ckpts=1, kill_at=2)
    hook._save_checkpoint_with_step(runner, 1, meta={'iter': 1})
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_1.pth')
    with pytest.raises(_KilledWhileWriting):
        hook._save_checkpoint_with_step(runner, 2, meta={'iter': 2})
    # the old checkpoint survived, intact, and is still the one pointed to
    assert verify_checkpoint(tmp_path / 'iter_1.pth')['state_dict']['w'][0, 0] == 1.0
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_1.pth')
    assert not (tmp_path / 'iter_2.pth').exists()  # the partial write never took the name
    assert latest_valid_checkpoint(tmp_path)[0] == tmp_path / 'iter_1.pth'


def test_old_checkpoints_go_only_after_the_new_one_is_complete(tmp_path):
    hook, runner = _hook_and_runner(tmp_path, max_keep_ckpts=2)
    for step in (1, 2, 3, 4):
        hook._save_checkpoint_with_step(runner, step, meta={'iter': step})
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_3.pth', 'iter_4.pth']
    assert not list(tmp_path.glob('.*partial'))
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_4.pth')


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    hook, runner = _hook_and_runner(tmp_path)
    with pytest.raises(CheckpointError, match='refusing to save a checkpoint at iteration 0: 1 '
                                              'of 1 weight tensors are not finite'):
        hook.before_save_checkpoint(runner, _state(float('inf')))


@pytest.mark.parametrize('command', ['test', 'train'])
def test_the_cli_names_a_broken_checkpoint_in_one_line(tmp_path, command):
    from tests.conftest import run_up2

    nan = _save(tmp_path / 'nan.pth', float('nan'))
    truncated = _save(tmp_path / 'cut.pth')
    truncated.write_bytes(truncated.read_bytes()[:50])
    args = ['test', 'toy_regression', str(nan)] if command == 'test' else \
        ['train', 'toy_regression', '--work-dir', str(tmp_path / 'w'), '--resume', str(truncated)]
    result = run_up2(*args, sets=('toy',), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith('up2: error: checkpoint ') and 'Traceback' not in \
        result.stderr
    assert ('non-finite weights' if command == 'test' else 'truncated') in result.stderr
