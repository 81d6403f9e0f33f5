# Classification alone: the tiny generalist on Shapes (8 shape classes), 2-core CPU.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny.py',
          './_base_/datasets/shapes_classification.py', './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(classification=_base_.classification_task))
train_dataloader = dict(classification=_base_.classification_train)
val_dataloader = dict(classification=_base_.classification_val)
val_evaluator = dict(classification=_base_.classification_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
