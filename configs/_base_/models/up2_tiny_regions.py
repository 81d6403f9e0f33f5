# The tiny generalist with region proposals: the backbone also gives its stride-4 map (for the
# proposal masks), and a small class-agnostic MaskDINO-like proposal network (2 encoder and
# 3 decoder layers, 30 queries, all of them passed on as region tokens) feeds the shared decoder.
_base_ = ['./up2_tiny.py']
model = dict(
    image_encoder=dict(
        backbone=dict(out_strides=(4, 8, 16, 32)),
        neck=dict(in_channels=[24, 40, 112, 320]),
        proposal_generator=dict(
            type='RegionProposalNetwork', embed_dims=256, num_queries=30,
            num_proposal_tokens=30, encoder_levels=(1, 2, 3), mask_level=0,
            num_encoder_layers=2, num_decoder_layers=3, num_heads=8, num_points=4,
            ffn_dims=512)))
