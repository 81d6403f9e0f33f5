# Image-text retrieval alone: the tiny generalist on Shapes captions, 2-core CPU.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny.py',
          './_base_/datasets/shapes_retrieval.py', './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(retrieval=_base_.retrieval_task))
train_dataloader = dict(retrieval=_base_.retrieval_train)
val_dataloader = dict(retrieval=_base_.retrieval_val)
val_evaluator = dict(retrieval=_base_.retrieval_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
