# Iteration schedule: AdamW, linear warm-up then linear decay to 0 over 20k iterations.
# Every scheduler has an explicit `end`: a run resumed with an edited `train_cfg.max_iters`
# keeps the schedule it started with (shared/docs/stack.md P17).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-5),
    # FaRL fine-tunes the pre-trained backbone at a tenth of the head's learning rate
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=1000, end=20000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
