# The five-task generalist with the paper's ablation backbone, ResNet-50 (ImageNet-1k weights from
# checkpoints/resnet50.pth): UP2-Base's proposal network (300 queries, top 200 as region tokens),
# text encoder and 6-layer 768-wide MoE decoder, the same data and schedule
# (up2_base_swinb_in1k_coco.py); only the image backbone and the neck's input widths change.
_base_ = ['./up2_base_swinb_in1k_coco.py']
model = dict(
    image_encoder=dict(
        backbone=dict(_delete_=True, type='mmdet.ResNet', depth=50, num_stages=4,
                      out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True, style='pytorch',
                      norm_cfg=dict(type='BN', requires_grad=False),
                      init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50.pth')),
        neck=dict(in_channels=[256, 512, 1024, 2048])))
