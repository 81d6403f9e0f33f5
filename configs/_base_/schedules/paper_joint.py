# Joint training schedule in the spirit of the paper (GPUs needed): MT-AdamW, warm-up + cosine.
max_iters = 150000
train_cfg = dict(type='UnmixedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='MultiTaskValLoop')
test_cfg = dict(type='MultiTaskTestLoop')
optim_wrapper = dict(
    type='MultiTaskOptimWrapper',
    optimizer=dict(type='MTAdamW', lr=1e-4, betas=(0.9, 0.98), weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(custom_keys={'image_encoder.backbone': dict(lr_mult=0.1),
                                    'text_encoder': dict(lr_mult=0.1),
                                    'log_scale': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=5000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=5000, end=max_iters, eta_min_ratio=0.01),
]
