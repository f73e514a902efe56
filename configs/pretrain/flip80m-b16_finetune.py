# FLIP-80M ("FaceCLIP", ACM MM'24): fine-tune OpenAI CLIP ViT-B/16 on face image-text pairs,
# starting from a Hugging Face CLIPModel checkpoint. Facts: shared/docs/pretrain.md §5.
#
#   tools/dist_train.sh configs/pretrain/flip80m-b16_finetune.py 8
#
# Published recipe (TencentPretrain): 8 x A100, batch 160 per GPU, accumulation 8, lr 2e-5,
# AdamW (0.9, 0.999) eps 1e-6, wd 0.01 except biases and LayerNorms (the temperature and the
# projections are decayed), 200k micro-steps = 25k updates of 10,240 pairs, fp32, images squashed
# to 224 (no crop, no flip), CLIP statistics, temperature never clamped.
#
# Accumulation: the release used naive accumulation, so each contrastive loss saw 1,280 pairs;
# we keep that (MMEngine accumulative_counts=8) for parity. To train with all 10,240 negatives
# set optim_wrapper.accumulative_counts=1, train_dataloader.batch_size=1280 and
# model.accumulation_steps=8 (feature-cache accumulation, same memory per micro-batch).
# Deviations: bf16 autocast instead of fp32; torch AdamW (with bias correction) instead of
# TencentPretrain's BertAdam-style one; a standard 10% warm-up + linear decay over the 25k
# updates instead of the release's quirk (its scheduler counted micro-steps: 80% warm-up).
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/laion_face_wds.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

# The initial weights: a Hugging Face CLIPModel directory (openai/clip-vit-base-patch16, or a
# released FLIP-80M model such as FLIP-dataset/FLIP-base-16 to continue from it).
pretrained = 'checkpoints/clip-vit-base-patch16'
model = dict(
    type='CLIPPretrainer',
    clip=dict(
        embed_dim=512,
        vision_cfg=dict(type='FLIP80M', arch='base', img_size=224, patch_size=16,
                        final_norm=True, grad_checkpointing=True),
        text_cfg=dict(width=512, layers=12, heads=8, context_length=77,
                      grad_checkpointing=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    token_drop_ratio=0.,
    logit_scale_clamp=None,
    accumulation_steps=1,
    data_preprocessor=dict(type='ImageTextDataPreprocessor'))  # CLIP statistics

# FLIP-80M as a WebDataset (convert its parquet/TSV corpus with img2dataset); 80M pairs.
train_urls = 'data/flip80m/{00000..07999}.tar'
train_pipeline = [
    dict(type='SquashResize', size=224, interpolation='bicubic'),
    dict(type='TokenizeText', keys=('text', ), context_length=77),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=160,
    dataset=dict(urls=train_urls, num_samples=80_000_000, pipeline=train_pipeline))

updates = 25_000
accumulation = 8
max_iters = updates * accumulation  # iterations count micro-batches
warmup_iters = max_iters // 10
optim_wrapper = dict(
    accumulative_counts=accumulation,
    optimizer=dict(lr=2e-5, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01),
    # TencentPretrain decays everything except names with bias / gamma / beta (LayerNorms).
    # MMEngine's bias_decay_mult only sees parameters named `bias`: the fused q|k|v bias
    # (`attn.in_proj_bias`, HF's q/k/v_proj.bias) needs its own key.
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'in_proj_bias': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1., end_factor=0., by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters, val_interval=20_000)
default_hooks = dict(checkpoint=dict(interval=20_000, save_best='retrieval/i2t_R@1',
                                     rule='greater'))
