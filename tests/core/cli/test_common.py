"""What ``up2 train --data`` does by default: a finetune replays the config's own data and distils
from the checkpoint."""

from argparse import Namespace

import pytest
from mmengine.config import Config

from up2core.cli._common import DEFAULT_REPLAY, _replay
from up2core.errors import UserError


def _args(**given):
    values = dict(command='train', replay=None, plain_finetune=False, load_from='base.pth')
    values.update(given)
    return Namespace(**values)


def _config(tmp_path, generated=True):
    dataset = dict(data_root=str(tmp_path / 'shapes'), ann_file='a.json')
    if generated:
        dataset['prepare'] = dict(type='shapes')
    return Config(dict(train_dataloader=dict(detection=dict(dataset=dataset))))


def test_a_finetune_replays_by_default_and_the_options_say_otherwise(tmp_path):
    cfg = _config(tmp_path)
    assert _replay(_args(), cfg) == DEFAULT_REPLAY
    assert _replay(_args(replay=0.5), cfg) == 0.5
    assert _replay(_args(plain_finetune=True), cfg) is None
    assert _replay(_args(load_from=None), cfg) is None  # nothing learnt before: nothing to keep
    assert _replay(_args(command='test'), cfg) is None
    with pytest.raises(UserError, match='--plain-finetune trains on your data alone; --replay'):
        _replay(_args(plain_finetune=True, replay=0.5), cfg)


def test_without_the_configs_data_the_finetune_says_it_will_forget(tmp_path, capsys):
    cfg = _config(tmp_path, generated=False)
    assert _replay(_args(), cfg) is None
    line = capsys.readouterr().err.strip()
    assert line.startswith("up2: warning: the config's own training data is not here "
                           f"(detection: {tmp_path / 'shapes' / 'a.json'})")
    assert line.endswith('or add --plain-finetune') and '\n' not in line
    (tmp_path / 'shapes').mkdir()
    (tmp_path / 'shapes' / 'a.json').write_text('{}')
    assert _replay(_args(), cfg) == DEFAULT_REPLAY


def test_a_replaying_finetune_steps_at_a_lower_learning_rate_unless_told(capsys):
    from up2core.cli._common import FINETUNE_LR_SCALE, _finetune_learning_rate

    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='MTAdamW', lr=5e-4))))
    _finetune_learning_rate(cfg, set())
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(5e-4 * FINETUNE_LR_SCALE)
    assert 'up2: finetune: learning rate 0.0005 -> 0.0001' in capsys.readouterr().err
    given = Config(dict(optim_wrapper=dict(optimizer=dict(lr=3e-4))))
    _finetune_learning_rate(given, {'optim_wrapper.optimizer.lr'})
    assert given.optim_wrapper.optimizer.lr == 3e-4


def test_a_finetune_distils_by_default_and_the_options_say_otherwise():
    from up2core.cli._common import DEFAULT_DISTILL, distill_weight

    assert distill_weight(_args(data='mine.yaml', distill=None)) == DEFAULT_DISTILL
    assert distill_weight(_args(data='mine.yaml', distill=2.5)) == 2.5
    assert distill_weight(_args(data='mine.yaml', distill=0.0)) is None  # off
    assert distill_weight(_args(data='mine.yaml', distill=None, plain_finetune=True)) is None
    # an ablation: the plain finetune with distillation alone
    assert distill_weight(_args(data='mine.yaml', distill=1.0, plain_finetune=True)) == 1.0
    # the config's own data, from a checkpoint: no default (the same data, nothing to keep)
    assert distill_weight(_args(data=None, distill=None)) is None
    assert distill_weight(_args(data=None, distill=1.0)) == 1.0
    with pytest.raises(UserError, match=r'--distill -1: give a weight >= 0 \(0: off; the '
                                        r'default of a finetune is 10\)'):
        distill_weight(_args(data='mine.yaml', distill=-1.0))
    with pytest.raises(UserError, match='--distill 1 keeps the outputs of the checkpoint a run '
                                        'starts from: give it with --load-from CKPT'):
        distill_weight(_args(data='mine.yaml', distill=1.0, load_from=None, resume=None))


def test_the_distillation_hook_of_a_run_its_defaults_and_its_options():
    from up2core.cli._common import (
        DEFAULT_DISTILL,
        DEFAULT_DISTILL_EVERY,
        DEFAULT_DISTILL_IMAGE,
        distillation_hook,
    )

    def hook(**given):
        return distillation_hook(_args(**{'data': 'mine.yaml', 'distill': None,
                                          'distill_tasks': None, 'distill_image': None,
                                          'distill_every': None, **given}))

    assert hook() == dict(type='DistillationHook', weight=DEFAULT_DISTILL,
                          every=DEFAULT_DISTILL_EVERY, image=DEFAULT_DISTILL_IMAGE)
    assert hook(distill=2.0, distill_every=1, distill_image=False,
                distill_tasks=['replay_*']) == dict(type='DistillationHook', weight=2.0, every=1,
                                                    image=False, tasks=['replay_*'])
    assert hook(distill=0.0) is None and hook(plain_finetune=True) is None
    with pytest.raises(UserError, match=r'--distill-every 0: give a number of steps >= 1'):
        hook(distill_every=0)
    for given, option in ((dict(distill_image=False), '--no-distill-image'),
                          (dict(distill_image=True), '--distill-image'),
                          (dict(distill_every=3), '--distill-every'),
                          (dict(distill_tasks=['x']), '--distill-tasks')):
        with pytest.raises(UserError, match=f'^{option} says how to distil: give it with '
                                            r'--distill W \(or a finetune that distils'):
            hook(distill=0.0, **given)
