# MCF ("Toward High Quality Facial Representation Learning", Mask Contrastive Face): MAE
# reconstruction judged by a frozen MoCo-v3 teacher + MoCo-v3 contrast between two random
# masks, ViT-B/16 at 224 on LAION-FACE-cropped, 8 GPUs. Facts: shared/docs/pretrain.md §3.
#
#   tools/dist_train.sh configs/pretrain/mcf-b16_laionface-cropped.py 8
#   python tools/export_backbone.py work_dirs/mcf-b16_laionface-cropped/iter_624896.pth \
#       checkpoints/MCF-B16-ours.pth --format mcf   # then a downstream `MCF` backbone's init_cfg
#
# Published recipe (README command + code, §3.4): 8 GPUs x batch 64 x accum_iter 8 = 4,096
# images per update; blr 1.5e-4 -> lr = blr * 4096 / 256 = 2.4e-3; AdamW (0.9, 0.95), wd 0.05
# with timm's add_weight_decay rule (no decay on 1-D tensors and biases; the CLS and mask tokens
# are (1, 1, D) there, so they ARE decayed, and the fixed sin-cos tables are frozen); 16 epochs,
# 1 warm-up epoch, per-iteration half cosine to 0; mask ratio 0.75; feature loss on blocks
# (2, 5, 8, 11) of a frozen MoCo-v3 ViT-B/16, normalised over the token axis (MCF's dim=1),
# weight 1000; contrastive T = 0.2; target momentum 0.99; no gradient clipping.
#
# Iterations count micro-batches (MMEngine's accumulative_counts): one optimizer update every 8
# iterations, and the learning-rate schedule advances per micro-batch, as MAE's
# adjust_learning_rate does with its fractional epoch.
#
# Accumulation is naive, as MCF's: each contrastive loss sees one micro-batch of 64 queries per
# GPU against 512 gathered keys, not the 4,096 of an update (MCFPretrainer has no feature-cache
# accumulation; the MAE and feature losses are per sample anyway).
#
# Momentum target (the choice of issue 6): theta_t <- 0.99 theta_t + 0.01 theta_o after every
# OPTIMIZER step (momentum_update='per_step': a step-post hook on the optimizer; accumulation
# micro-steps do not move the target). MCF's code updates inside forward, on every micro-batch,
# i.e. 0.99^8 ~ 0.923 per update with accum_iter 8 (and its --moco_m is never used);
# `model.momentum_update='per_micro_batch'` reproduces that. Under DDP MCFMomentumHook (and
# PretrainDistributedDataParallel) attach the optimizer to the model.
#
# Deviations: bf16 autocast (MCF: fp16 with GradScaler); the teacher recomputes its blocks in
# backward (gradient checkpointing, memory only); images are centre-cropped to a square after
# the short-side resize (MCF's batches only stack when the crops are square anyway, see the
# data base); `diff_rank_seed` gives every rank its own masks, as MCF's per-rank seed does.
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/laion_face_cropped.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

# MoCo-v3's released ViT-B/16 (300 epochs): {'state_dict': {'module.base_encoder.*'}}. Which
# MoCo-v3 model MCF used is not stated (pretrain.md §3.5).
num_train_images = 20_000_000  # set to the number of keys in the LMDB: epochs are sized with it
imagenet_mean = (123.675, 116.28, 103.53)  # MCF's Normalize, 0-255 units
imagenet_std = (58.395, 57.12, 57.375)

teacher_checkpoint = 'checkpoints/mocov3-vit-b-300ep.pth.tar'
model = dict(
    type='MCFPretrainer',
    # MAE's ViT-B/16 (timm layout: erf GELU, LN eps 1e-6, patch bias, fixed sin-cos table)
    encoder=dict(type='MCF', arch='base', img_size=224, patch_size=16),
    decoder=dict(embed_dims=512, num_layers=8, num_heads=16, feedforward_channels=2048),
    teacher=dict(
        type='FrozenViTTeacher',
        backbone=dict(type='MCF', arch='base', img_size=224, patch_size=16),
        checkpoint=teacher_checkpoint,
        out_indices=(2, 5, 8, 11),
        input_size=224,
        grad_checkpointing=True),
    projector_hidden_dims=4096,
    projection_dims=256,
    feature_loss=dict(type='FeatureDistillLoss', norm_dim=1, loss_weight=1000.),
    contrastive_loss=dict(type='MoCoV3Loss', temperature=0.2),
    mask_ratio=0.75,
    momentum=0.99,
    momentum_update='per_step',
    data_preprocessor=dict(type='ImageTextDataPreprocessor', mean=imagenet_mean,
                           std=imagenet_std))

num_gpus = 8
batch_per_gpu = 64
accumulation = 8
global_batch = num_gpus * batch_per_gpu * accumulation  # 4,096 images per update
epochs = 16
updates_per_epoch = num_train_images // global_batch  # 4,882 for 20M images
iters_per_epoch = updates_per_epoch * accumulation  # 39,056 micro-batches
max_iters = epochs * iters_per_epoch  # 624,896 micro-batches = 78,112 updates
warmup_iters = iters_per_epoch  # 1 epoch
train_dataloader = dict(batch_size=batch_per_gpu)

base_lr = 1.5e-4
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    accumulative_counts=accumulation,
    optimizer=dict(type='AdamW', lr=base_lr * global_batch / 256, betas=(0.9, 0.95), eps=1e-8,
                   weight_decay=0.05),
    # timm's add_weight_decay: every tensor of ndim <= 1 and every bias is not decayed, the rest
    # is. Our class_embedding and mask tokens are 1-D (timm's are (1, 1, D)), hence the custom
    # keys that put them back under decay.
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'class_embedding': dict(decay_mult=1.),
            'mask_token': dict(decay_mult=1.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters)
val_cfg = None  # image-only pre-training: nothing to evaluate during training
test_cfg = None

custom_hooks = [
    dict(type='PretrainLoggingHook', skip_interval=400),
    dict(type='MCFMomentumHook'),
]
default_hooks = dict(
    logger=dict(interval=400),  # every 50 updates
    # one checkpoint per epoch (each holds the AdamW state and the target; no teacher)
    checkpoint=dict(interval=iters_per_epoch, max_keep_ckpts=3))
log_processor = dict(window_size=400)
randomness = dict(seed=0, diff_rank_seed=True)
