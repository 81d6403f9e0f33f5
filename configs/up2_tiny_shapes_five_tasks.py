# All five tasks in ONE tiny generalist on Shapes: classification, retrieval, detection,
# instance segmentation and captioning, sampled unmixed (one task per step) with MT-AdamW.
# The four-task run's settings, plus captioning with as many steps as it gets alone
# (up2_tiny_shapes_captioning): 300 steps per other task and 600 captioning steps in
# expectation.  About 75 minutes on 2 CPU cores.
_base_ = ['./up2_tiny_shapes_four_tasks.py', './_base_/datasets/shapes_captioning.py']

model = dict(tasks=dict(captioning=_base_.captioning_task))
train_dataloader = dict(captioning=_base_.captioning_train)
max_iters = 1800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters,
                 sampling_weights=dict(classification=1.0, retrieval=1.0, detection=1.0,
                                       segmentation=1.0, captioning=2.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min_ratio=0.05),
]
val_dataloader = dict(captioning=_base_.captioning_val)
val_evaluator = dict(captioning=_base_.captioning_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
