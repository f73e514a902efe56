# Quickstart: a tiny FaRL + UPerNet trained for 50 iterations on synthetic LaPa, on CPU, in well
# under two minutes. It checks an installation end to end; the numbers mean nothing about FaRL.
# At 64x64 and 50 iterations only background, skin and hair are learned (mIoU about 18); the
# small parts (brows, eyes, nose, lips) stay at IoU 0 and need far longer training.
#
#   python tools/train.py configs/quickstart/lapa-synthetic_farl-tiny.py
#   python tools/test.py configs/quickstart/lapa-synthetic_farl-tiny.py \
#       work_dirs/lapa-synthetic_farl-tiny/iter_50.pth --out metrics.json
#
# The data is generated into `data_root` on first use (see `synthetic_data`).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/farl_upernet.py',
    '../_base_/datasets/lapa_synthetic.py',
    '../_base_/schedules/schedule_20k.py',
]
default_scope = 'mmseg'

data_root = 'data/synthetic/LaPa'
synthetic_data = dict(kind='lapa', root=data_root, num_images=dict(train=16, val=4, test=4),
                      image_size=128, seed=0)

img_size = 64
embed_dims = 64
max_iters = 50
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=(img_size, img_size)),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=embed_dims, num_layers=4, num_heads=4,
                  feedforward_channels=256),
        img_size=img_size,
        patch_size=8,
        out_indices=(0, 1, 2, 3),
    ),
    neck=dict(embed_dim=embed_dims, norm_cfg=norm_cfg),
    # no dropout: with the data order restored by --resume, a resumed run repeats the original
    decode_head=dict(in_channels=[embed_dims] * 4, channels=64, dropout_ratio=0.,
                     norm_cfg=norm_cfg),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# randomly initialised backbone: one learning rate for everything
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-3, betas=(0.9, 0.999), weight_decay=1e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=5, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=25, max_keep_ckpts=2),
    visualization=dict(type='SegVisualizationHook'),
)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
