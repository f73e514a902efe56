# FaRL's face-parsing recipe (shared/docs/farl_protocol.md §5.1, §7.3, §9), for a global batch of
# 40 (5 per GPU x 8 GPUs; the dataset bases set 5 per GPU):
# * AdamW (0.9, 0.999), weight decay 1e-5 on every parameter (norms and biases included), lr 1e-3
#   for the neck (FaRL's fpns) and the head, 0.1 x that = 1e-4 for the backbone ("refine_backbone");
# * MultiStepLR x0.1 after epoch 200, stepped per epoch, 300 epochs, no warm-up;
# * EMA of the weights *and* the floating-point buffers (BN statistics), decay 0.999 per step =
#   MMEngine momentum 0.001; validation, the best checkpoint and the saved weights are the EMA's;
# * evaluation on the TEST split every epoch (val_dataloader is the test split in the dataset
#   bases), best checkpoint by `mean_f1` kept next to the last one (FaRL reports the best epoch).
#   FaRL's config says every epoch; its paper logs show every 5 (train_cfg.val_interval=5 halves
#   the cost of a LaPa run on few GPUs, at the price of a coarser best-epoch choice).
# The scheduler has an explicit `end`: resuming with an edited max_epochs keeps the milestone
# (shared/docs/stack.md P17).
_base_ = ['../default_runtime.py']

# + faceanalysis.evaluation: the FaceParsingMetric of the val/test evaluators
custom_imports = dict(
    imports=['faceanalysis.models', 'faceanalysis.datasets', 'faceanalysis.evaluation'],
    allow_failed_imports=False)

max_epochs = 300
lr_milestone = 200

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-5),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
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
    # one rolling checkpoint for resuming (with the optimizer), plus the best by mean_f1 (weights
    # only) and the last epoch; the saved `state_dict` holds the EMA weights (EMAHook)
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_last=True,
                    save_best='mean_f1', rule='greater'),
    logger=dict(type='LoggerHook', interval=50),
)

# The recipe is for 8 GPUs x 5 images. With another number of GPUs, `--auto-scale-lr`-style
# linear scaling is available (MMEngine's Runner rescales the lr when
# auto_scale_lr.enable=True): --cfg-options auto_scale_lr.enable=True
auto_scale_lr = dict(enable=False, base_batch_size=40)
