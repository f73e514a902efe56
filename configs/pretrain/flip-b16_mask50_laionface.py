# FLIP (Li et al., CVPR'23) on LAION-Face: CLIP ViT-B/16 with 50% of the image tokens removed,
# then an unmasked tuning phase, 8 GPUs. Facts: shared/docs/pretrain.md §4.
#
#   tools/dist_train.sh configs/pretrain/flip-b16_mask50_laionface.py 8
#
# Global batch 32,768 (FLIP's 50%-masking ablation batch; its code default is 65,536): 4,096 per
# GPU in 4 micro-batches of 1,024 with feature-cache accumulation, so the contrastive loss keeps
# all 32,768 negatives (CLIPPretrainer.accumulation_steps; naive accumulation would give 8,192).
# lr = 4e-6 per 256 -> 5.12e-4; AdamW (0.9, 0.95), wd 0.2 without biases, LayerNorms and
# embeddings; warm-up 40 ImageNet-epochs (51.2M samples), cosine to 0.
#
# Deviations from FLIP, all forced by the data or the shared text tower:
# * LAION-Face (20M face pairs) instead of LAION-400M; the schedule keeps FLIP's sample counts
#   scaled to 16 LAION-Face epochs (320M samples) instead of FLIP's 12.8B.
# * Text: CLIP BPE (49408) with context 32, bidirectional, first-token pooling, instead of BERT
#   WordPiece (30523) with context 32: the same architecture with the tokenizer of our stack.
# * Unmasked tuning runs inside the same job (UnmaskedTuningHook) for the last 128M/32k = 3,906
#   iterations, continuing the cosine from where it is (FLIP restarts a warm-up at lr/100).
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/laion_face_wds.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

context_length = 32
imagenet_mean = (123.675, 116.28, 103.53)
imagenet_std = (58.395, 57.12, 57.375)
model = dict(
    type='CLIPPretrainer',
    clip=dict(
        embed_dim=512,
        vision_cfg=dict(
            arch='base', img_size=224, patch_size=16, patch_bias=True, ln_pre=False,
            pos_embed='sincos', freeze_pos_embed=True, act='gelu_tanh', ln_eps=1e-6,
            pool='avg_all', grad_checkpointing=True),
        text_cfg=dict(width=512, layers=12, heads=8, context_length=context_length,
                      act='gelu_tanh', ln_eps=1e-6, causal=False, pool='first',
                      grad_checkpointing=True)),
    token_drop_ratio=0.5,
    logit_scale_clamp='forward',
    accumulation_steps=4,
    data_preprocessor=dict(type='ImageTextDataPreprocessor', mean=imagenet_mean,
                           std=imagenet_std))

train_pipeline = [
    dict(type='RandomResizedCropImage', size=224, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3),
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TokenizeText', keys=('text', ), context_length=context_length),
    dict(type='PackImageText'),
]
val_pipeline = [
    dict(type='ResizeShortCenterCrop', size=224, interpolation='bicubic'),
    dict(type='TokenizeText', keys=('text', ), context_length=context_length),
    dict(type='PackImageText'),
]
train_dataloader = dict(batch_size=4096, num_workers=16,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

global_batch = 8 * 4096
warmup_iters = 51_200_000 // global_batch      # 1,562
masked_iters = 320_000_000 // global_batch     # 9,765
unmasked_iters = 128_000_000 // global_batch   # 3,906
max_iters = masked_iters + unmasked_iters
optim_wrapper = dict(
    optimizer=dict(lr=4e-6 * global_batch / 256, betas=(0.9, 0.95), eps=1e-8,
                   weight_decay=0.2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
custom_hooks = [
    dict(type='PretrainLoggingHook', skip_interval=50),
    dict(type='UnmaskedTuningHook', begin=masked_iters, ratio=0.),
]
default_hooks = dict(checkpoint=dict(interval=1000, save_best='retrieval/i2t_R@1',
                                     rule='greater'))
