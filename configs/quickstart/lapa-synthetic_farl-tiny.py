# Quickstart: face parsing in LaPa's format with FaRL's pipeline and a tiny FaRL-style ViT, trained
# for 50 iterations on generated LaPa-format data, on CPU, in well under two minutes. It checks an
# installation end to end; the numbers mean nothing about FaRL.
#
#   python tools/train.py configs/quickstart/lapa-synthetic_farl-tiny.py
#   python tools/test.py configs/quickstart/lapa-synthetic_farl-tiny.py \
#       work_dirs/lapa-synthetic_farl-tiny/iter_50.pth --out metrics.json --show-dir vis
#
# The data is generated into `data_root` on first use (see `synthetic_data`): images, labels and
# 106 landmarks in the LaPa release layout, read by LaPaDataset. The pipeline is the real one
# (configs/_base_/datasets/lapa.py): 5-point alignment from the landmarks, FaRL's random affine,
# RoI tanh-warp (wf 0.8) and colour augmentations; only the canvas is 128 instead of 512 and the
# backbone sees 64x64. Predictions are inverse-warped to the original 128x128 images and scored
# with FaceParsingMetric (mean_f1 over the 10 foreground classes, FaRL's headline). After 50
# iterations background, skin and hair are learned; the small parts (brows, eyes, lips) need
# longer training (tests/data/configs/lapa-synthetic_farl-tiny_overfit.py reaches mean_f1 >= 90
# on the training images).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/farl_parsing.py',
    '../_base_/datasets/lapa.py',
    '../_base_/schedules/schedule_20k.py',
]
default_scope = 'mmseg'
custom_imports = dict(
    imports=['faceanalysis.models', 'faceanalysis.datasets', 'faceanalysis.evaluation'],
    allow_failed_imports=False)

# report.md of tools/test.py: FaRL's LaPa numbers for context (no run of this recipe exists)
paper_reference = dict(dataset='lapa', recipe='quickstart-tiny')

data_root = 'data/synthetic/LaPa'
synthetic_data = dict(kind='lapa', root=data_root, num_images=dict(train=16, val=4, test=4),
                      image_size=128, seed=0)

warped_size = (128, 128)  # the tanh-warp canvas (FaRL: 512)
warp_factor = 0.8
img_size = 64  # what the backbone sees (FaRL: 448)
embed_dims = 64
max_iters = 50
norm_cfg = dict(type='SyncBN', requires_grad=True)

data_preprocessor = dict(size=warped_size)
model = dict(
    data_preprocessor=dict(size=warped_size),
    backbone_input_size=(img_size, img_size),
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
    dict(type='LoadLaPaAnnotations'),
    dict(type='FaceAlignMatrix', mode='landmarks', target_shape=warped_size),
    dict(type='RandomFaceAffine', target_shape=warped_size),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=warp_factor),
    dict(type='RandomGray', prob=0.1),
    dict(type='RandomGamma'),
    dict(type='RandomBoxBlur', max_ratio=0.01),
    dict(type='PackSegInputs', meta_keys={{_base_.parsing_meta_keys}}),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='FaceAlignMatrix', mode='landmarks', target_shape=warped_size),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=warp_factor, warp_label=False),
    dict(type='LoadLaPaAnnotations'),
    dict(type='PackSegInputs', meta_keys={{_base_.parsing_meta_keys}}),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
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
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=25, max_keep_ckpts=2,
                    save_best='mean_f1', rule='greater'),
)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
