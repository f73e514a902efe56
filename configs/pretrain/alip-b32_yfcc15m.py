# ALIP ("Adaptive Language-Image Pre-training with Synthetic Caption", ICCV'23): CLIP ViT-B/32
# trained on YFCC15M raw texts AND one OFA synthetic caption per image, the two contrastive
# losses weighted per sample by the language / description consistency gates, 8 GPUs.
# Facts: shared/docs/pretrain.md §6.
#
#   tools/dist_train.sh configs/pretrain/alip-b32_yfcc15m.py 8
#   python tools/export_backbone.py work_dirs/alip-b32_yfcc15m/iter_117696.pth \
#       checkpoints/ALIP_YFCC15M_B32-ours.pt --format alip   # ALIP's flat module.* release layout
#   # FaceCLIP.from_pretrained(OUT, act='gelu') (the flat dict holds no architecture hints)
#
# Published recipe (script + train.py, §6.4): 8 GPUs x 512 = 4,096 pairs per step, no
# accumulation; 32 epochs of steps_per_epoch = 15,061,515 // 8 // 512 + 1 = 3,678 steps;
# AdamW lr 1e-3, weight decay 0.2 on ALL parameters (LayerNorms, biases, embeddings and the
# temperature included: one parameter group); torch OneCycleLR(max_lr=1e-3, pct_start=0.1),
# cosine, div_factor 25 (start 4e-5), final_div_factor 1e4, stepped per iteration, with
# cycle_momentum, which drives AdamW's beta1 0.95 -> 0.85 -> 0.95 (overriding --beta1 0.9);
# gradient norm clipped at 1.0; fp16 autocast with GradScaler(growth_interval=200); the
# temperature clamped in place to [0, ln 100] after every step (logit_scale_clamp='param');
# erf GELU in both towers (open_clip's quick_gelu=False), gradient checkpointing always on.
#
# MMEngine's OneCycleLR schedules the learning rate only; the two CosineAnnealingMomentum pieces
# below reproduce torch's cycle_momentum (its phase boundary pct_start * total_steps is a float:
# T_max = warm - 1 for the fall, T_max = total - warm for the rise), checked step by step against
# torch in tests/test_models/test_alip.py::test_recipe_schedule_matches_torch_one_cycle. The
# schedule starts beta1 at AdamW's configured 0.95 (torch's max_momentum).
#
# Deviations / our choices: the corpus is read as WebDataset shards with the synthetic caption
# as a `{key}.cap.txt` member (ALIP: MXNet records with both captions pre-tokenised); the data
# order comes from a per-worker shuffle buffer instead of DALI's reader; AdamW eps 1e-6
# (open_clip's default for ViTs; the value ALIP's script passes is not recorded); a held-out
# retrieval evaluation every epoch (ALIP evaluates after training).
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/yfcc15m_alip.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
]

model = dict(
    type='ALIPPretrainer',
    # ALIP's ViT-B/32 (open_clip ViT-B-32.json, quick_gelu=False): OpenAI layout, erf GELU
    clip=dict(
        embed_dim=512,
        vision_cfg=dict(type='FaceViT', arch='base', img_size=224, patch_size=32, act='gelu',
                        ln_eps=1e-5, ln_pre=True, patch_bias=False, grad_checkpointing=True),
        text_cfg=dict(vocab_size=49408, context_length=77, width=512, layers=12, heads=8,
                      act='gelu', ln_eps=1e-5, causal=True, pool='eot_argmax',
                      grad_checkpointing=True)),
    gates=dict(type='ConsistencyGates', momentum=0.99, gamma=2.0, init_value=1.0),
    loss=dict(type='AdaptiveClipLoss', gather_with_grad=False),
    logit_scale_clamp='param',
    accumulation_steps=1,
    data_preprocessor=dict(type='ImageTextDataPreprocessor'))  # CLIP statistics

num_train_samples = 15_061_515
num_gpus = 8
batch_per_gpu = 512
global_batch = num_gpus * batch_per_gpu  # 4,096
epochs = 32
steps_per_epoch = num_train_samples // num_gpus // batch_per_gpu + 1  # 3,678 (ALIP's formula)
max_iters = epochs * steps_per_epoch  # 117,696
train_dataloader = dict(batch_size=batch_per_gpu, dataset=dict(num_samples=num_train_samples))

max_lr = 1e-3
pct_start = 0.1
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale=dict(init_scale=2.**16, growth_interval=200),
    optimizer=dict(type='AdamW', lr=max_lr, betas=(0.95, 0.98), eps=1e-6, weight_decay=0.2),
    paramwise_cfg=dict(_delete_=True),  # one group: weight decay on every parameter
    clip_grad=dict(max_norm=1.0))
warm = pct_start * max_iters  # torch OneCycleLR's phase boundary, a float (11,769.6)
first_end = int(warm) + (1 if warm > int(warm) else 0)  # ceil
param_scheduler = [
    dict(type='OneCycleLR', eta_max=max_lr, total_steps=max_iters, pct_start=pct_start,
         by_epoch=False),
    dict(type='CosineAnnealingMomentum', T_max=warm - 1, eta_min=0.85, begin=0, end=first_end,
         by_epoch=False),
    dict(type='CosineAnnealingMomentum', T_max=max_iters - warm, eta_min=0.95,
         begin=first_end - 1, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters,
                 val_interval=steps_per_epoch)
default_hooks = dict(
    checkpoint=dict(interval=steps_per_epoch, max_keep_ckpts=3,
                    save_best='retrieval/i2t_R@1', rule='greater'))
