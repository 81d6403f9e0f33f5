"""The five-task configs of the paper's three image encoders (ResNet-50, Swin-B, Swin-L) build
with random weights and train every task: a forward and a backward pass on CPU, tiny inputs."""

import sys

import pytest
import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import model_size  # noqa: E402
from gpu_step import TRAINED, synthetic_samples  # noqa: E402

CONFIGS = ['up2_r50_in1k_coco', 'up2_base_swinb_in1k_coco', 'up2_large_swinl_in1k_coco']
SIZE = 128


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_every_task_of_the_paper_scale_config_trains_one_step(name):
    from mmengine.registry import init_default_scope

    from up2core.registry import MODELS

    init_default_scope('up2core')
    torch.manual_seed(0)
    cfg = model_size.offline_config(name)
    assert set(TRAINED) <= set(cfg.model.tasks) and set(TRAINED) == set(cfg.train_dataloader)
    # 10 class names stand in for ImageNet's 1000 (each is encoded with gradients: memory)
    cfg.model.tasks.classification.class_names = [f'class {i}' for i in range(10)]
    model = MODELS.build(cfg.model)
    model.train()
    rpn = model.image_encoder.proposal_generator
    assert rpn.num_queries == 300 and rpn.num_proposal_tokens == 200
    assert model.decoder.embed_dims == 768 and len(model.decoder.layers) == 6
    backbone = [p for p in model.image_encoder.backbone.parameters() if p.requires_grad]
    images = torch.randn(2, 3, SIZE, SIZE)
    for task in TRAINED:
        model.zero_grad(set_to_none=True)
        losses = model(images, synthetic_samples(task, SIZE), mode='loss')
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        assert torch.isfinite(total), (task, losses)
        total.backward()
        # the gradient reaches the shared decoder and the image backbone
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.decoder.parameters()), task
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone), task
    # the evaluation-only Flickr30k task shares the retrieval task's temperature
    assert model.tasks['flickr30k_retrieval'].likelihood_group == 'retrieval'
