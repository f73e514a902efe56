# Image-text pre-training on CPU in about two minutes: a tiny FaRL-layout CLIP trained with FLIP's
# 50% image-token masking and a final unmasked phase on the generated toy corpus (coloured shapes
# with captions such as "a large red circle"), evaluated by zero-shot retrieval on held-out pairs
# every 100 iterations; then its image tower initialises the tiny parsing quickstart.
#
#   python tools/train.py configs/pretrain/farl-tiny_toy-shapes_flip-mask50_cpu.py
#   python tools/export_backbone.py \
#       work_dirs/farl-tiny_toy-shapes_flip-mask50_cpu/iter_300.pth checkpoints/toy_clip.pth
#   python tools/train.py configs/quickstart/lapa-synthetic_farl-tiny_toy-pretrained.py
#
# Same machinery as the real recipes (configs/pretrain/flip-b16_mask50_laionface.py): WebDataset
# shards streamed per rank and worker, CLIPPretrainer with token drop, UnmaskedTuningHook, AdamW
# with no-decay groups, warm-up + cosine, retrieval metric with save_best. Only the sizes differ,
# and fp32 (bf16 autocast needs a GPU here). The held-out captions use one wording per content
# ("a red circle"): 30 captions, chance i2t R@1 = 3.3 %.
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/toy_image_text.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

embed_dim = 64
model = dict(
    type='CLIPPretrainer',
    clip=dict(
        embed_dim=embed_dim,
        # the image tower of configs/quickstart/lapa-synthetic_farl-tiny.py (FaRL's layout:
        # QuickGELU, ln_pre, no patch bias), so the export initialises that downstream model
        vision_cfg=dict(
            type='FaRL',
            arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
            img_size=64, patch_size=8),
        text_cfg=dict(width=64, layers=2, heads=4, context_length=16)),
    token_drop_ratio=0.5,
    logit_scale_clamp='forward',
    data_preprocessor=dict(type='ImageTextDataPreprocessor'))  # CLIP statistics

max_iters = 300
warmup_iters = 30
unmasked_begin = 250  # the last 50 iterations see whole images (FLIP's unmasked tuning)
optim_wrapper = dict(
    type='OptimWrapper',
    _delete_=True,
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={
            'positional_embedding': dict(decay_mult=0.),
            'class_embedding': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
        }),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters, val_interval=100)
custom_hooks = [
    dict(type='PretrainLoggingHook', skip_interval=20),
    dict(type='UnmaskedTuningHook', begin=unmasked_begin, ratio=0.),
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=100, max_keep_ckpts=2, save_best='retrieval/i2t_R@1',
                    rule='greater'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
