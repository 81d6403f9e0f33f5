# Counting trained JOINTLY with UP2's classification on Shapes, in one generalist.
# Everything but the counting task comes from UP2's packaged configs through the `up2::` scope
# (runtime, tiny model, Shapes classification data, schedule), so this file holds only what is new.
#   up2 train counting_shapes_joint
_base_ = ['up2::up2_tiny_shapes_classification.py']

counting_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LimitImageSize', max_side=128),  # a UP2 transform: big photos down, tiny ones up
    # which sample fields reach the task: CountingTask reads gt_count
    dict(type='PackUP2Inputs', task='counting', data_keys=('gt_count',)),
]
counting_dataset = dict(type='CocoCountDataset', data_root=_base_.shapes_data_root,
                        prepare=_base_.classification_prepare, pipeline=counting_pipeline)
counting_train = dict(
    batch_size=32, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(counting_dataset, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/')))
counting_val = dict(
    batch_size=50, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(counting_dataset, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), test_mode=True))

# Merged into the base config's dicts: classification stays, counting is added.
model = dict(tasks=dict(counting=dict(type='counting', max_count=4)))
train_dataloader = dict(counting=counting_train)
val_dataloader = dict(counting=counting_val)
val_evaluator = dict(counting=dict(type='CountAccuracy'))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Two tasks, one drawn per iteration (unmixed sampling): twice classification's steps alone.
# `--cfg-options max_iters=N` shortens the run and UP2 stretches this schedule to match.
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters,
                 sampling_weights=dict(classification=1.0, counting=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min_ratio=0.05),
]
