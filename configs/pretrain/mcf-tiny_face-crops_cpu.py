# MCF pre-training on CPU in well under a minute: the machinery of
# configs/pretrain/mcf-b16_laionface-cropped.py (MAE masking + decoder, frozen-teacher feature
# loss, MoCo-v3 contrast against a momentum target updated per optimizer step, naive gradient
# accumulation, map-style image data under the iteration loop, a checkpoint to resume from) on
# generated face crops with tiny towers.
#
#   python tools/train.py configs/pretrain/mcf-tiny_face-crops_cpu.py
#   python tools/train.py configs/pretrain/mcf-tiny_face-crops_cpu.py --resume  # from iter_40
#   python tools/export_backbone.py work_dirs/mcf-tiny_face-crops_cpu/iter_80.pth \
#       checkpoints/mcf_tiny.pth --format mcf
#
# TEST-ONLY TEACHER: the frozen teacher is a randomly initialised tiny ViT
# (allow_random_init=True), because no small MoCo-v3 checkpoint exists. Its features are a
# fixed random function of the image, so the feature loss still measures how well the decoder
# reconstructs the input, but they are no meaningful perceptual target: do not use this config
# to learn representations.
#
# Data: 256 synthetic 64 px face crops (faceanalysis.datasets.synthetic.render_synthetic_face)
# written on first use in the ImageFolder layout (data/synthetic/face_crops/faces/*.jpg: the
# only synthetic image-only writer; ImageFolderImages and LMDBImages share their decoding and
# pipeline), resized to 32 px. Sizes: encoder 64 wide x 2 blocks on 32 px / patch 8 (16
# patches, 4 visible), decoder 32 x 1, teacher 64 x 3 tapped at blocks (0, 2). fp32 (bf16
# autocast needs a GPU here).
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/laion_face_cropped.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

data_root = 'data/synthetic/face_crops'
synthetic_data = dict(kind='face_crops', root=data_root, num_images=256, image_size=64, seed=0)

image_size = 32
patch_size = 8
model = dict(
    type='MCFPretrainer',
    encoder=dict(type='MCF', arch=dict(embed_dims=64, num_layers=2, num_heads=4,
                                       feedforward_channels=128),
                 img_size=image_size, patch_size=patch_size),
    decoder=dict(embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64),
    teacher=dict(
        type='FrozenViTTeacher',
        backbone=dict(type='MCF', arch=dict(embed_dims=64, num_layers=3, num_heads=4,
                                            feedforward_channels=128),
                      img_size=image_size, patch_size=patch_size),
        checkpoint=None,
        allow_random_init=True,  # test only, see above
        out_indices=(0, 2),
        input_size=image_size),
    projector_hidden_dims=128,
    projection_dims=32,
    feature_loss=dict(type='FeatureDistillLoss', norm_dim=1, loss_weight=1000.),
    contrastive_loss=dict(type='MoCoV3Loss', temperature=0.2),
    mask_ratio=0.75,
    momentum=0.99,
    momentum_update='per_step',
    data_preprocessor=dict(type='ImageTextDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375)))

train_pipeline = [
    dict(type='ResizeShortCenterCrop', size=image_size, interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageText', with_text=False),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(_delete_=True, type='ImageFolderImages', data_root=data_root,
                 pipeline=train_pipeline))

accumulation = 2  # naive accumulation as the paper recipe: 40 updates of 32 images
max_iters = 80
warmup_iters = 8
optim_wrapper = dict(
    type='OptimWrapper',
    _delete_=True,
    accumulative_counts=accumulation,
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={'class_embedding': dict(decay_mult=1.),
                     'mask_token': dict(decay_mult=1.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
test_cfg = None

custom_hooks = [
    dict(type='PretrainLoggingHook', skip_interval=10),
    dict(type='MCFMomentumHook'),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=40, max_keep_ckpts=2))
log_processor = dict(window_size=10)  # each logged loss is the mean of its 10 iterations
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
