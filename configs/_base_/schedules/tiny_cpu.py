# Optimisation for the tiny configs on a 2-core CPU: AdamW, short warm-up, cosine decay.
# The pre-trained encoders learn 10x slower than the randomly initialised decoder.
max_iters = 600
train_cfg = dict(type='UnmixedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='MultiTaskValLoop')
test_cfg = dict(type='MultiTaskTestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(custom_keys={
        'image_encoder.backbone': dict(lr_mult=0.1),
        'text_encoder': dict(lr_mult=0.1),
        'log_scale': dict(decay_mult=0.0),
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min_ratio=0.05),
]
