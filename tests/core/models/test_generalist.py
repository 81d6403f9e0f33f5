"""UP2Generalist's own options: ``freeze`` keeps submodules fixed while the rest trains."""

from __future__ import annotations

import pytest
import torch
from mmengine.structures import BaseDataElement

from tests.plugins import conftest
from up2core.config import ConfigError
from up2core.optim.mt_adamw import MTAdamW
from up2core.registry import MODELS

FROZEN = ('image_encoder.neck', 'text_encoder')


def _model(freeze=None, tune=None):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='UP2Generalist', freeze=freeze, tune=tune,
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        image_encoder=dict(
            type='ImageEncoder',
            backbone=dict(type='EfficientNetLite0', pretrained='pkg', out_strides=(16, 32),
                          frozen_stages=4),
            neck=dict(type='mmdet.ChannelMapper', in_channels=[112, 320], out_channels=32,
                      kernel_size=1),
            embed_dims=32, num_pool_tokens=2, pool_heads=4, pos_grid=4),
        text_encoder=conftest.TEXT_ENCODER, decoder=conftest.DECODER,
        tasks=dict(classification=dict(type='classification',
                                        class_names=['cat', 'dog', 'bird']))))


def _changed_after_training(model, steps: int = 3) -> set[str]:
    """Names of the state tensors that a few MT-AdamW steps (with weight decay) change."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = MTAdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    model.train()
    for step in range(steps):
        torch.manual_seed(step)
        samples = [BaseDataElement(metainfo=dict(task='classification'), gt_label=i)
                   for i in (0, 1, 2)]
        losses = model(torch.randn(3, 3, 64, 64), samples, mode='loss')
        optimizer.set_task('classification', 1.0, 1.0, num_tasks=1)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        optimizer.zero_grad()
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_frozen_submodules_are_bit_identical_after_training_and_stay_in_eval_mode():
    def in_frozen(name):
        return name.startswith(tuple(f'{path}.' for path in FROZEN))

    # without freeze the same steps move those modules: the check below can fail
    assert any(in_frozen(name) for name in _changed_after_training(_model()))
    model = _model(freeze=list(FROZEN))
    changed = _changed_after_training(model)
    assert not [name for name in changed if in_frozen(name)]
    assert 'decoder.spe' in changed  # the rest trained
    assert not model.text_encoder.training and not model.image_encoder.neck.training
    assert model.decoder.training
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_an_unknown_module_to_freeze_names_what_there_is():
    with pytest.raises(ConfigError, match=r"'image_encoder.bakbone' is not a submodule; "
                                          r"'image_encoder' has backbone, neck"):
        _model(freeze=['image_encoder.bakbone'])
    with pytest.raises(ConfigError, match="'encoder' is not a submodule; the model has "):
        _model(freeze=['encoder'])


ATTENTION = ('decoder.layers.*.qkv.*', 'decoder.layers.*.proj.*')


def test_selective_tuning_changes_the_matched_tensors_only_and_the_rest_stays_in_eval():
    import fnmatch

    model = _model(tune=list(ATTENTION))
    changed = _changed_after_training(model)
    assert changed and all(any(fnmatch.fnmatchcase(n, p) for p in ATTENTION) for n in changed)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if any(fnmatch.fnmatchcase(n, p) for p in ATTENTION)}
    # nothing to tune in them: no dropout, no batch-norm statistics moving
    assert not model.image_encoder.training and not model.text_encoder.training
    assert model.decoder.training and model.decoder.layers[0].qkv.training


def test_a_pattern_that_matches_nothing_shows_what_names_look_like():
    with pytest.raises(ConfigError, match=r"model.tune: 'decoder.layer.\*' matches no parameter; "
                                          r"parameter names look like decoder\."):
        _model(tune=['decoder.layer.*'])
