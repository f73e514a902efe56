# FaRL's alignment recipe for 300W (shared/docs/farl_protocol.md §5.1): AdamW (0.9, 0.999),
# weight decay 1e-5 on every parameter, lr 1e-2 for neck (fpns) and head, 1e-4 for the backbone
# (lr_mult 0.01), MultiStepLR x0.1 after epoch 200 of 250 stepped per epoch, no warmup,
# EMA 0.999 per optimizer step with buffers, evaluation every epoch (EMA weights), best + last.
_base_ = ['../default_runtime.py']

max_epochs = 250
lr_milestone = 200

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-2, betas=(0.9, 0.999), weight_decay=1e-5),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}),
)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[lr_milestone], gamma=0.1, begin=0,
         end=max_epochs),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001,
         update_buffers=True),
]
default_hooks = dict(
    # one rolling checkpoint for resuming, the best by inter-ocular/box NME (lower is better)
    # and the last epoch; the saved `state_dict` holds the EMA weights (EMAHook)
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_last=True,
                    save_best='nme', rule='less'),
    logger=dict(type='LoggerHook', interval=50),
)

auto_scale_lr = dict(enable=False, base_batch_size=40)
