# Runtime shared by every faceanalysis config (pre-training, parsing, alignment).
# Task bases set `default_scope` ('mmseg' / 'mmpose' / 'faceanalysis') and their `visualizer`.
# MMEngine forbids a top-level key in two bases of one config, so `default_hooks` and
# `log_processor` live here only; iteration-based configs override `by_epoch` themselves:
#   default_hooks = dict(logger=dict(log_metric_by_epoch=False),
#                        checkpoint=dict(by_epoch=False, interval=...))
#   log_processor = dict(by_epoch=False)
custom_imports = dict(imports=['faceanalysis.models', 'faceanalysis.datasets',
                               'faceanalysis.evaluation'],
                      allow_failed_imports=False)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches this to gloo when launched distributed on a machine without CUDA
    dist_cfg=dict(backend='nccl'),
)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # averages BN statistics over ranks before validation and at the end of each epoch: with
    # SyncBN turned into BN (CPU-distributed runs) the ranks' running stats would otherwise differ
    sync_buffers=dict(type='SyncBuffersHook'),
)

log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
