# UP2-Base (Swin-B, MaskDINO-like region proposals, 6-layer 768-wide MoE decoder) trained jointly
# on ImageNet-1k classification, COCO detection and instance segmentation, COCO retrieval and
# COCO captioning (Karpathy split); retrieval is also scored zero-shot on Flickr30k (1k test
# images), as in the paper.  Needs GPUs:
# `torchrun --nproc_per_node 8 -m up2core.cli train ... --launcher pytorch` (dist_cfg nccl).
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_base_swinb.py',
          './_base_/datasets/imagenet.py', './_base_/datasets/coco_caption_karpathy.py',
          './_base_/datasets/coco_instances.py', './_base_/datasets/flickr30k.py',
          './_base_/schedules/paper_joint.py']

model = dict(tasks=dict(classification=_base_.imagenet_task,
                        detection=_base_.coco_detection_task,
                        segmentation=_base_.coco_segmentation_task,
                        retrieval=_base_.coco_retrieval_task,
                        captioning=_base_.coco_captioning_task,
                        # evaluation only (no train loader): the retrieval task on Flickr30k
                        flickr30k_retrieval=_base_.flickr30k_retrieval_task))
train_dataloader = dict(classification=_base_.imagenet_train,
                        detection=_base_.coco_detection_train,
                        segmentation=_base_.coco_segmentation_train,
                        retrieval=_base_.coco_retrieval_train,
                        captioning=_base_.coco_captioning_train)
train_cfg = dict(sampling_weights=dict(classification=1.0, detection=1.0, segmentation=1.0,
                                       retrieval=1.0, captioning=1.0))
val_dataloader = dict(classification=_base_.imagenet_val, detection=_base_.coco_detection_val,
                      segmentation=_base_.coco_segmentation_val,
                      retrieval=_base_.coco_retrieval_test,
                      captioning=_base_.coco_captioning_test,
                      flickr30k_retrieval=_base_.flickr30k_retrieval_test)
val_evaluator = dict(classification=_base_.imagenet_evaluator,
                     detection=_base_.coco_detection_evaluator,
                     segmentation=_base_.coco_segmentation_evaluator,
                     retrieval=_base_.coco_retrieval_evaluator,
                     captioning=_base_.coco_captioning_evaluator,
                     flickr30k_retrieval=_base_.flickr30k_retrieval_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
env_cfg = dict(dist_cfg=dict(backend='nccl'))
