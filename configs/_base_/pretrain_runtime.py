# Runtime of every pre-training config: faceanalysis scope, iteration-based logging and
# checkpoints, throughput logging, and the DDP wrapper that runs the models' own feature-cache
# gradient accumulation (faceanalysis.engine.PretrainDistributedDataParallel).
_base_ = ['./default_runtime.py']

default_scope = 'faceanalysis'
custom_imports = dict(imports=['faceanalysis.models', 'faceanalysis.datasets',
                               'faceanalysis.evaluation', 'faceanalysis.engine'],
                      allow_failed_imports=False)

default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    # keep the last 3 checkpoints (each holds AdamW state: ~1.8 GB for CLIP B/16)
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3),
    # streaming datasets shard themselves; map-style validation sets use the default sampler
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [dict(type='PretrainLoggingHook', skip_interval=50)]
log_processor = dict(by_epoch=False, window_size=50)

# Frozen teachers and momentum encoders have requires_grad=False, so DDP never sees them;
# every trainable parameter is used in every step.
# (The scope prefix is needed: Runner.wrap_model looks the type up in MMEngine's root registry.)
model_wrapper_cfg = dict(type='faceanalysis.PretrainDistributedDataParallel', find_unused_parameters=False)
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
