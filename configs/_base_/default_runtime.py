# Runtime defaults shared by every UP2 config: MMEngine hooks, logging, environment, and the
# dataset roots (data_roots.py: one key per dataset family that one override moves).
_base_ = ['./data_roots.py']
default_scope = 'up2core'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # validation metrics logged at the step they were measured (UP2 runs count steps, not epochs)
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # MMEngine's CheckpointHook with atomic writes, old checkpoints deleted only after the new one
    # is complete, and non-finite weights refused (up2core/engine/hooks.py)
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=500,
                    max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# the last validation's metrics, flat, in <work_dir>/metrics.json; the data card (what the model
# was trained on, its names and val metrics) in every checkpoint's meta; a progress line per
# tenth of training, evaluation and test on the console (the log file has every detail); a
# row per validation in results.csv and every task's curves in results.png; four val images
# answered by every task after each validation (predictions/step_N/)
custom_hooks = [dict(type='MetricsFileHook'), dict(type='DataCardHook'),
                dict(type='ConsoleProgressHook'), dict(type='BaseCheckpointHook'),
                dict(type='RunResultsHook'), dict(type='PredictionsHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'),  # 'nccl' on GPUs: override with --cfg-options
)

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
