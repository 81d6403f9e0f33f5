# Shapes captioning alone in the tiny generalist (the single-task reference for the joint runs).
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny.py',
          './_base_/datasets/shapes_captioning.py', './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(captioning=_base_.captioning_task))
train_dataloader = dict(captioning=_base_.captioning_train)
max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters,
                 sampling_weights=dict(captioning=1.0))
optim_wrapper = dict(type='MultiTaskOptimWrapper', optimizer=dict(type='MTAdamW'))
val_dataloader = dict(captioning=_base_.captioning_val)
val_evaluator = dict(captioning=_base_.captioning_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
