# The embedded default: ONE tiny generalist trained jointly on Shapes classification and
# retrieval (one task per iteration), evaluated on both.  2-core CPU, minutes.
_base_ = ['./_base_/default_runtime.py', './_base_/models/up2_tiny.py',
          './_base_/datasets/shapes_classification.py', './_base_/datasets/shapes_retrieval.py',
          './_base_/schedules/tiny_cpu.py']

model = dict(tasks=dict(classification=_base_.classification_task,
                        retrieval=_base_.retrieval_task))
train_dataloader = dict(classification=_base_.classification_train,
                        retrieval=_base_.retrieval_train)
train_cfg = dict(sampling_weights=dict(classification=1.0, retrieval=1.0))
# MT-AdamW (the paper's task-balanced gradient normalisation): better than AdamW on both tasks
# here, see the README's results (benchmarks/quality_shapes.py).
optim_wrapper = dict(type='MultiTaskOptimWrapper', optimizer=dict(type='MTAdamW'))
val_dataloader = dict(classification=_base_.classification_val,
                      retrieval=_base_.retrieval_val)
val_evaluator = dict(classification=_base_.classification_evaluator,
                     retrieval=_base_.retrieval_evaluator)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
