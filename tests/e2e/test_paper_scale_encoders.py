"""The five-task configs of the paper's three image encoders (ResNet-50, Swin-B, Swin-L) build
with random weights and train every task: a forward and a backward pass on CPU, tiny inputs."""

import sys

import pytest
import torch
from mmengine.structures import BaseDataElement, InstanceData

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import model_size  # noqa: E402

CONFIGS = ['up2_r50_in1k_coco', 'up2_base_swinb_in1k_coco', 'up2_large_swinl_in1k_coco']
TRAINED = ('classification', 'detection', 'segmentation', 'retrieval', 'captioning')
SIZE = 128


def _samples(task: str) -> list:
    """Two samples of ``task`` as its pipeline would pack them."""
    if task == 'classification':
        return [BaseDataElement(metainfo=dict(task=task), gt_label=i) for i in (3, 7)]
    if task in ('retrieval', 'captioning'):
        return [BaseDataElement(metainfo=dict(task=task), texts=[t])
                for t in ('a man riding a wave', 'two dogs play in the grass')]
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks

    # several objects per image: with random weights a matched query may rank outside the 200
    # region tokens, and an image whose every match does has no region-classification loss
    boxes = torch.tensor([[10., 12., 70., 100.], [40., 30., 120., 90.], [5., 60., 50., 120.],
                          [64., 64., 100., 110.]])
    samples = []
    for shift in (0, 4):
        bboxes = boxes + shift
        gt = InstanceData(bboxes=HorizontalBoxes(bboxes), labels=torch.tensor([17, 2, 40, 0]))
        if task == 'segmentation':
            masks = torch.zeros(len(bboxes), SIZE, SIZE, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(bboxes.int().tolist()):
                masks[i, y0:y1, x0:x1] = 1
            gt.masks = BitmapMasks(masks.numpy(), SIZE, SIZE)
        samples.append(DetDataSample(gt_instances=gt, metainfo=dict(
            task=task, img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), scale_factor=(1., 1.))))
    return samples


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
        losses = model(images, _samples(task), mode='loss')
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        assert torch.isfinite(total), (task, losses)
        total.backward()
        # the gradient reaches the shared decoder and the image backbone
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.decoder.parameters()), task
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone), task
    # the evaluation-only Flickr30k task shares the retrieval task's temperature
    assert model.tasks['flickr30k_retrieval'].likelihood_group == 'retrieval'
