"""Several tasks on the same images: one encoding, the same losses and gradients as each task
on its own, and a clear error when the images are not the same."""

from __future__ import annotations

import pytest
import torch
from mmengine.structures import BaseDataElement

from tests.conftest import ROOT

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_shapes_e2e.py'


@pytest.fixture(scope='module')
def model():
    from mmengine.registry import init_default_scope

    from up2core.config import load_config
    from up2core.registry import MODELS

    init_default_scope('up2core')
    torch.manual_seed(0)
    # eval mode: no dropout, so a shared and a separate pass compute the same numbers
    return MODELS.build(load_config(str(CONFIG)).model).eval()


def _samples():
    cls = [BaseDataElement(metainfo=dict(task='classification'), gt_label=i) for i in (1, 4, 6)]
    ret = [BaseDataElement(metainfo=dict(task='retrieval'), texts=[t]) for t in
           ('a large red circle.', 'two small blue squares.', 'one green star.')]
    return {'classification': cls, 'retrieval': ret}


def _count(module, method: str):
    calls = []
    original = getattr(module, method)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    setattr(module, method, counted)
    return calls


def test_a_multi_task_batch_is_encoded_once_with_the_losses_and_gradients_of_separate_ones(
        model):
    images = torch.randn(3, 3, 64, 64)
    samples = _samples()
    for task in model.tasks.values():
        task.clear_cache()
    separate = {task: model(images, batch, mode='loss') for task, batch in samples.items()}
    total = sum(loss for losses in separate.values() for k, loss in losses.items()
                if 'loss' in k)
    model.zero_grad()
    total.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    for task in model.tasks.values():
        task.clear_cache()  # eval mode caches the class names' features: compute them again
    backbone = _count(model.image_encoder.backbone, 'forward')
    decoder = _count(model.decoder, 'forward')
    try:
        shared = model(images, samples, mode='loss')
    finally:
        del model.image_encoder.backbone.forward, model.decoder.forward
    assert len(backbone) == 1
    # one pass over the image tokens for both tasks, one for the class names, one for the texts
    assert len(decoder) == 3
    for task, losses in separate.items():
        for key, value in losses.items():
            assert torch.allclose(shared[task][key], value, atol=1e-5), (task, key)
    sum(loss for losses in shared.values() for k, loss in losses.items()
        if 'loss' in k).backward()
    for name, param in model.named_parameters():
        if name in expected:
            assert torch.allclose(param.grad, expected[name], atol=1e-5, rtol=1e-4), name
    model.zero_grad()


def test_nothing_is_shared_outside_the_context(model):
    images = torch.randn(2, 3, 64, 64)
    backbone = _count(model.image_encoder.backbone, 'forward')
    try:
        with torch.no_grad():
            model.encode_image(images)
            model.encode_image(images)
            with model.shared_encoding():
                first = model.encode_image(images)
                assert model.encode_image(images) is first
                assert model.encode_image(images.clone()) is not first  # another tensor
    finally:
        del model.image_encoder.backbone.forward
    assert len(backbone) == 4
    assert model._shared is None


def test_different_images_in_a_shared_batch_name_the_tasks():
    from up2core.engine.loops import same_images

    a = {'inputs': torch.zeros(2, 3, 8, 8)}
    flipped = {'inputs': torch.zeros(2, 3, 8, 8)}
    flipped['inputs'][0, 0, 0, 0] = 1.0
    assert same_images({'classification': a, 'retrieval': dict(a)}) is a['inputs']
    with pytest.raises(ValueError, match="batch of 'detection' differs from that of "
                                         "'classification'.*RandomFlip"):
        same_images({'classification': a, 'detection': flipped})
    with pytest.raises(ValueError, match='val_cfg.shared_images=True'):
        same_images({'classification': a, 'detection': {'inputs': torch.zeros(1, 3, 8, 8)}},
                    'val')
