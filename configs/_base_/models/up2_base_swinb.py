# UP2-Base as in the paper: Swin-B image backbone (ImageNet-21k), pre-trained RoBERTa-base text
# encoder fine-tuned jointly, a BERT-base shared decoder (768 wide, 12 heads, FFN 3072, 6 layers)
# with attribute-routed Conditional MoE (8 experts, top-2) in every FFN, and a MaskDINO-like
# class-agnostic region-proposal network (6 encoder + 9 decoder layers, 300 queries; the 200 with
# the highest objectness go on to the shared decoder as region tokens).
# Weights are read from local paths (nothing is downloaded): put them under checkpoints/.
model = dict(
    type='UP2Generalist',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    image_encoder=dict(
        type='ImageEncoder',
        backbone=dict(
            type='mmdet.SwinTransformer', embed_dims=128, depths=[2, 2, 18, 2],
            num_heads=[4, 8, 16, 32], window_size=12, mlp_ratio=4, qkv_bias=True,
            drop_path_rate=0.3, patch_norm=True, out_indices=(0, 1, 2, 3), with_cp=False,
            convert_weights=True,
            init_cfg=dict(type='Pretrained',
                          checkpoint='checkpoints/swin_base_patch4_window12_384_22k.pth')),
        neck=dict(type='mmdet.ChannelMapper', in_channels=[128, 256, 512, 1024],
                  out_channels=256, kernel_size=1, norm_cfg=dict(type='GN', num_groups=32)),
        embed_dims=256, num_pool_tokens=8, flatten_last=True, pos_grid=12,
        proposal_generator=dict(
            type='RegionProposalNetwork', embed_dims=256, num_queries=300,
            num_proposal_tokens=200, encoder_levels=(1, 2, 3), mask_level=0,
            num_encoder_layers=6, num_decoder_layers=9, num_heads=8, num_points=4,
            ffn_dims=2048)),
    text_encoder=dict(type='HFTextEncoder', pretrained='checkpoints/roberta-base',
                      max_length=40),
    decoder=dict(type='UnifiedDecoder', embed_dims=768, num_heads=12, ffn_dims=3072, depth=6,
                 dropout=0.1, moe=dict(num_experts=8, top_k=2, layers='all', attention=False)),
    tasks=dict(),
)
