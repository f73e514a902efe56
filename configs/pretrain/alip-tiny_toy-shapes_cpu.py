# ALIP pre-training on CPU in about a minute: the machinery of configs/pretrain/alip-b32_yfcc15m.py
# (raw text + synthetic caption through one text tower, consistency gates with their EMAs,
# gate-weighted contrastive losses, weight decay on every parameter, one-cycle learning rate with
# cycled AdamW beta1, gradient clipping, temperature clamped in place, erf GELU towers) on the
# generated toy corpus, evaluated by zero-shot retrieval on held-out pairs every 50 iterations.
#
#   python tools/train.py configs/pretrain/alip-tiny_toy-shapes_cpu.py
#   python tools/export_backbone.py work_dirs/alip-tiny_toy-shapes_cpu/iter_80.pth \
#       checkpoints/alip_tiny.pt --format alip
#   # FaceCLIP.from_pretrained('checkpoints/alip_tiny.pt', act='gelu', vision_heads=4,
#   #                          text_heads=4)  (a flat ALIP dict holds no architecture hints)
#
# The corpus (configs/_base_/datasets/toy_image_text.py) gives every image a raw caption ("a
# large red circle") and a second wording of the same content ("a photo of a circle that is
# red", the `{key}.cap.txt` member), which plays ALIP's OFA caption; both are tokenised. Held-out
# retrieval: 120 pairs, 30 distinct captions, chance i2t R@1 = 3.3 %. Towers as
# configs/pretrain/farl-tiny_toy-shapes_flip-mask50_cpu.py, but FaceViT/OpenAI layout with erf
# GELU (ALIP's quick_gelu=False). fp32 (fp16 autocast needs a GPU here).
#
# Reading the log: the summed loss `loss_raw + loss_caption` is weighted by the gates, whose
# EMAs start at 1 (tiny weights) and fall as the model learns, so the weights grow and the
# logged loss rises while the model improves (here about 0.7 -> 2.6). Judge the run by the
# retrieval metric, or divide out the mean weights: loss_raw / (gate_ws_mean * gate_wt_mean),
# the gate-weighted mean of the per-sample losses, falls (about 1.8 -> 1.4, chance ln 32 = 3.5);
# `gate_s_it` / `gate_s_ic` are the mean cosines of the positive pairs.
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/toy_image_text.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

embed_dim = 64
model = dict(
    type='ALIPPretrainer',
    clip=dict(
        embed_dim=embed_dim,
        vision_cfg=dict(type='FaceViT',
                        arch=dict(embed_dims=64, num_layers=4, num_heads=4,
                                  feedforward_channels=256),
                        img_size=64, patch_size=8, act='gelu', ln_eps=1e-5, ln_pre=True,
                        patch_bias=False),
        text_cfg=dict(width=64, layers=2, heads=4, context_length=16, act='gelu')),
    gates=dict(type='ConsistencyGates', momentum=0.99, gamma=2.0, init_value=1.0),
    loss=dict(type='AdaptiveClipLoss', gather_with_grad=False),
    logit_scale_clamp='param',
    data_preprocessor=dict(type='ImageTextDataPreprocessor'))  # CLIP statistics

max_iters = 80
max_lr = 2e-3
pct_start = 0.1
optim_wrapper = dict(
    type='OptimWrapper',
    _delete_=True,
    optimizer=dict(type='AdamW', lr=max_lr, betas=(0.95, 0.98), eps=1e-6, weight_decay=0.2),
    clip_grad=dict(max_norm=1.0))  # no paramwise_cfg: one group, every parameter decayed
warm = pct_start * max_iters  # torch OneCycleLR's phase boundary (8.0 here)
first_end = int(warm) + (1 if warm > int(warm) else 0)  # ceil
param_scheduler = [
    dict(type='OneCycleLR', eta_max=max_lr, total_steps=max_iters, pct_start=pct_start,
         by_epoch=False),
    dict(type='CosineAnnealingMomentum', T_max=warm - 1, eta_min=0.85, begin=0, end=first_end,
         by_epoch=False),
    dict(type='CosineAnnealingMomentum', T_max=max_iters - warm, eta_min=0.95,
         begin=first_end - 1, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters, val_interval=40)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=60, max_keep_ckpts=3, save_best='retrieval/i2t_R@1',
                    rule='greater'))
log_processor = dict(window_size=10)  # each logged value is the mean of its 10 iterations
custom_hooks = [dict(type='PretrainLoggingHook', skip_interval=10)]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
