"""The paper-scale config builds and runs a forward pass on the CPU."""

import sys

import pytest
import torch
from mmengine.structures import BaseDataElement

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import model_size  # noqa: E402


@pytest.mark.slow
def test_swin_b_moe_config_builds_runs_forward_and_is_paper_sized():
    from up2core.registry import MODELS

    cfg = model_size.offline_config('up2_base_swinb_in1k_coco')
    cfg.model.tasks.classification.class_names = [f'class {i}' for i in range(10)]
    model = MODELS.build(cfg.model)
    sizes = model_size.count(model)
    print({k: f'{v / 1e6:.1f}M' for k, v in sizes.items()})
    assert model.decoder.embed_dims == 768 and len(model.decoder.layers) == 6
    assert model.decoder.layers[0].fc1.num_experts == 8
    # Swin-B ~87M + the MaskDINO-like proposal network ~24M; BERT-base ~109M; a 6-layer decoder
    # whose FFNs have 8 experts
    assert 100e6 < sizes['image_encoder'] < 125e6
    rpn = model.image_encoder.proposal_generator
    assert rpn.num_queries == 300 and len(rpn.decoder.layers) == 9
    # The paper reports 308M for UP2-Base; ours is 264M, with a BERT-base stand-in for
    # RoBERTa-base (109M vs 125M) among the differences (README).
    assert 240e6 < sizes['deployed'] < 320e6
    assert sizes['total'] > sizes['deployed']
    model.train()
    images = torch.randn(2, 3, 384, 384)
    cls = [BaseDataElement(metainfo=dict(task='classification'), gt_label=i) for i in (3, 7)]
    losses = model(images, cls, mode='loss')
    assert torch.isfinite(losses['loss_cls'])
    ret = [BaseDataElement(metainfo=dict(task='retrieval'), texts=[t])
           for t in ('a dog on a sofa', 'two people riding horses')]
    with torch.no_grad():
        losses = model(images, ret, mode='loss')
    assert torch.isfinite(losses['loss_i2t']) and torch.isfinite(losses['loss_t2i'])


@pytest.mark.slow
def test_swin_b_detection_and_segmentation_run_forward_and_loss():
    """Random weights, CPU: the paper-scale proposal network + decoder on a 256 px batch."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    from up2core.registry import MODELS

    cfg = model_size.offline_config('up2_base_swinb_in1k_coco')
    cfg.model.tasks = dict(detection=cfg.model.tasks.detection,
                           segmentation=cfg.model.tasks.segmentation)
    model = MODELS.build(cfg.model)
    model.train()
    images = torch.randn(1, 3, 256, 256)
    for task, with_masks in (('detection', False), ('segmentation', True)):
        gt = InstanceData(bboxes=HorizontalBoxes(torch.tensor([[20., 30., 120., 200.]])),
                          labels=torch.tensor([17]))
        if with_masks:
            masks = torch.zeros(1, 256, 256, dtype=torch.uint8)
            masks[0, 30:200, 20:120] = 1
            gt.masks = BitmapMasks(masks.numpy(), 256, 256)
        sample = DetDataSample(gt_instances=gt, metainfo=dict(
            task=task, img_shape=(256, 256), ori_shape=(256, 256), scale_factor=(1.0, 1.0)))
        losses = model(images, [sample], mode='loss')
        assert losses['loss_rpn_giou'].isfinite() and losses['loss_region_cls'].isfinite()
        assert ('loss_rpn_mask' in losses) == with_masks
        assert 'loss_rpn_d7.l1' in losses  # auxiliary losses of all 9 decoder layers
    model.eval()
    with torch.no_grad():
        (pred,) = model(images, [sample], mode='predict')
    assert len(pred.pred_instances.bboxes) == 100  # max_per_image
    assert pred.pred_instances.masks.shape[1:] == (256, 256)


@pytest.mark.slow
def test_swin_b_captioning_runs_forward_loss_and_cached_decoding():
    """Random weights, CPU: teacher-forced loss, and incremental decoding equals recomputation."""
    from up2core.registry import MODELS

    cfg = model_size.offline_config('up2_base_swinb_in1k_coco')
    cfg.model.tasks = dict(captioning=cfg.model.tasks.captioning)
    model = MODELS.build(cfg.model)
    images = torch.randn(2, 3, 128, 128)
    samples = [BaseDataElement(metainfo=dict(task='captioning'), texts=[t])
               for t in ('a man riding a wave', 'two dogs play in the grass')]
    model.train()
    losses = model(images, samples, mode='loss')
    assert losses['loss_caption'].isfinite() and losses['vocabulary_size'] > 10
    model.eval()
    task = model.tasks['captioning']
    with torch.no_grad():
        cached = task.generate(model, images, beam_size=2, max_length=4)
        full = task.generate(model, images, beam_size=2, max_length=4, incremental=False)
    assert cached.tokens == full.tokens
