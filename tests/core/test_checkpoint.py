"""MMEngine checkpoints load under torch's weights_only=True default, with a narrow allow-list."""

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from up2core.config import find_config
from up2core.engine.checkpoint import allow_mmengine_checkpoints


def test_runner_checkpoints_hold_only_allow_listed_globals(use_plugin_sets, tmp_path):
    use_plugin_sets('toy')
    cfg = Config.fromfile(str(find_config('toy_regression')))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 3
    Runner.from_cfg(cfg).train()
    checkpoint = tmp_path / 'iter_3.pth'
    allow_mmengine_checkpoints()
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:  # what the file needs beyond torch's own defaults
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint)))
    finally:
        torch.serialization.add_safe_globals(allowed)
    # It needs more than the defaults (that is the bug being fixed), and nothing beyond our list.
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert unsafe <= _names(allowed), unsafe - _names(allowed)
    # ...so the safe loader reads it, message hub and all.
    state = torch.load(checkpoint, weights_only=True)
    assert state['meta']['iter'] == 3
    assert 'log_scalars' in state['message_hub']


def test_the_allow_list_does_not_admit_arbitrary_code(tmp_path):
    import os

    allow_mmengine_checkpoints()
    path = tmp_path / 'evil.pth'
    torch.save({'x': os.getcwd}, path)
    try:
        torch.load(path, weights_only=True)
    except Exception as exc:  # UnpicklingError
        assert 'getcwd' in str(exc)
    else:
        raise AssertionError('a checkpoint with os.getcwd loaded under weights_only')


def _names(safe_globals):
    return {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
            for g in safe_globals}
