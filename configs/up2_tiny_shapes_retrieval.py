# Image-text retrieval alone: the tiny generalist on Shapes captions, 2-core CPU.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny.py',
          './_base_/datasets/shapes_retrieval.py', './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(retrieval=_base_.retrieval_task))
train_dataloader = dict(retrieval=_base_.retrieval_train)
val_dataloader = dict(retrieval=_base_.retrieval_val)
val_evaluator = dict(retrieval=_base_.retrieval_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Alone, the task needs fewer iterations than the joint run (measured: benchmarks/quality_shapes.py).
train_cfg = dict(max_iters=300, val_interval=300)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=300, eta_min_ratio=0.05),
]
