# Classification alone: the tiny generalist on Shapes (8 shape classes), 2-core CPU.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny.py',
          './_base_/datasets/shapes_classification.py', './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(classification=_base_.classification_task))
train_dataloader = dict(classification=_base_.classification_train)
val_dataloader = dict(classification=_base_.classification_val)
val_evaluator = dict(classification=_base_.classification_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Alone, the task needs fewer iterations than the joint run (measured: benchmarks/quality_shapes.py).
train_cfg = dict(max_iters=400, val_interval=400)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=400, eta_min_ratio=0.05),
]
