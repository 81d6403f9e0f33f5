# UP2-Large: the five-task generalist of up2_base_swinb_in1k_coco.py with a Swin-L image backbone
# (ImageNet-21k weights from checkpoints/; the paper's were further trained on Objects365
# detection).  Proposal network, text encoder and decoder as in UP2-Base: the paper gives no other
# size for them (its 446M vs 308M is mostly the backbone; README "Scaling out" itemises it).
_base_ = ['./up2_base_swinb_in1k_coco.py']
model = dict(
    image_encoder=dict(
        backbone=dict(embed_dims=192, num_heads=[6, 12, 24, 48],
                      init_cfg=dict(type='Pretrained',
                                    checkpoint='checkpoints/swin_large_patch4_window12_384_22k.pth')),
        neck=dict(in_channels=[192, 384, 768, 1536])))
