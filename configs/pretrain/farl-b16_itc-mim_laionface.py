# FaRL (Zheng et al., CVPR'22): image-text contrastive learning + masked image modelling on
# LAION-Face 20M, CLIP ViT-B/16 at 224, 8 GPUs. Facts: shared/docs/pretrain.md §2.
#
#   tools/dist_train.sh configs/pretrain/farl-b16_itc-mim_laionface.py 8
#   python tools/export_backbone.py work_dirs/farl-b16_itc-mim_laionface/iter_62500.pth \
#       checkpoints/FaRL-Base-Patch16-ours.pth --format farl   # then configs/parsing/*farl*.py
#
# What is known (released model): OpenAI CLIP layout with QuickGELU; one ViT pass over
# [clean; masked] images, masked patches replaced by a learned mask token (BEiT style), a
# 1-block MIM transformer + LayerNorm + linear head; loss = ITC + MIM, equal weights; LAION-Face
# 20M; 16 epochs (ep16) or 64 (ep64). FaRL's pre-training code is not released: batch 5,120,
# AdamW, peak lr ~1e-3 and blockwise masking of ~40 % (75 of 196 patches) are the paper's
# values as recalled (unverified); weight decay, warm-up and augmentation are our choices.
#
# Deviation (documented choice): FaRL's MIM target is the token id of a DALL-E dVAE (8192
# codes), whose weights cannot be downloaded here. The target is pluggable; this recipe
# regresses the LayerNorm-normalised patch features of a frozen OpenAI CLIP ViT-B/16
# (TeacherFeatureTarget, smooth-L1 on masked patches). With a learned 8192-entry codebook in the
# teacher's feature space, `mim_target=dict(type='CodebookTokenizer', codebook=FILE, ...)`
# restores FaRL's cross-entropy over discrete tokens and its head size.
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/laion_face_wds.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

teacher_checkpoint = 'checkpoints/clip-vit-base-patch16'  # Hugging Face CLIPModel directory
model = dict(
    type='FaRLPretrainer',
    clip=dict(
        embed_dim=512,
        vision_cfg=dict(type='FaRL', arch='base', img_size=224, patch_size=16,
                        final_norm=True, grad_checkpointing=True),
        text_cfg=dict(width=512, layers=12, heads=8, context_length=77,
                      grad_checkpointing=True)),
    mim_head=dict(num_layers=1),
    mim_target=dict(
        type='TeacherFeatureTarget',
        teacher=dict(type='FaceViT', arch='base', img_size=224, patch_size=16,
                     act='quick_gelu'),
        checkpoint=teacher_checkpoint,
        layer=-1,
        feature_norm='layer_norm',
        loss='smooth_l1'),
    mim_loss_weight=1.0,
    logit_scale_clamp='forward',
    # 640 pairs per GPU = 1,280 ViT sequences: 4 micro-batches with all 5,120 negatives kept
    accumulation_steps=4,
    data_preprocessor=dict(type='ImageTextDataPreprocessor'))  # CLIP statistics

train_pipeline = [
    dict(type='RandomResizedCropImage', size=224, scale=(0.5, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='BlockwiseMaskGenerator', grid_size=14, num_masking_patches=75,
         min_num_patches=16, patch_size=16),
    dict(type='TokenizeText', keys=('text', ), context_length=77),
    dict(type='PackImageText'),
]
train_dataloader = dict(batch_size=640, dataset=dict(pipeline=train_pipeline))

global_batch = 8 * 640
max_iters = 16 * 20_000_000 // global_batch  # 62,500 (ep64: 250,000)
warmup_iters = 2000
optim_wrapper = dict(optimizer=dict(lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters, val_interval=2500)
default_hooks = dict(checkpoint=dict(interval=2500, save_best='retrieval/i2t_R@1',
                                     rule='greater'))
