# Four tasks in ONE tiny generalist on Shapes: classification, retrieval, detection and instance
# segmentation, sampled unmixed (one task per step) with MT-AdamW.  Every task's images go through
# the same encoder: global tokens and region-proposal tokens reach the shared decoder for all
# four (the paper's "global + regional" setting).  About 35 minutes on 2 CPU cores.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny_regions.py',
          './_base_/datasets/shapes_classification.py', './_base_/datasets/shapes_retrieval.py',
          './_base_/datasets/shapes_regions.py', './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(classification=_base_.classification_task,
                        retrieval=_base_.retrieval_task,
                        detection=_base_.detection_task,
                        segmentation=_base_.segmentation_task))
train_dataloader = dict(classification=_base_.classification_train,
                        retrieval=_base_.retrieval_train,
                        detection=_base_.detection_train,
                        segmentation=_base_.segmentation_train)
# 300 steps per task in expectation: as many classification and retrieval steps as the two-task
# joint run (up2_tiny_shapes), and 600 detection + segmentation steps.
max_iters = 1200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters,
                 sampling_weights=dict(classification=1.0, retrieval=1.0, detection=1.0,
                                       segmentation=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min_ratio=0.05),
]
# The two-task joint run's optimisation (MT-AdamW, lr 5e-4), except that the proposal network,
# trained from scratch, takes twice the learning rate (1e-3, up2_tiny_shapes_regions' lr when this
# run was measured; that config has since moved to 3e-4 after 3 seeds, this one is one run).
optim_wrapper = dict(type='MultiTaskOptimWrapper', optimizer=dict(type='MTAdamW'),
                     paramwise_cfg=dict(custom_keys={
                         'image_encoder.proposal_generator': dict(lr_mult=2.0)}))
val_dataloader = dict(classification=_base_.classification_val,
                      retrieval=_base_.retrieval_val,
                      detection=_base_.detection_val,
                      segmentation=_base_.segmentation_val)
val_evaluator = dict(classification=_base_.classification_evaluator,
                     retrieval=_base_.retrieval_evaluator,
                     detection=_base_.detection_evaluator,
                     segmentation=_base_.segmentation_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
