# Pre-training schedule: AdamW with the usual no-decay groups, linear warm-up then cosine to 0,
# bf16 autocast, iteration-based loop over a streaming dataset. Recipes override the numbers
# (and the lists: param_scheduler is replaced, not merged).
#
# No weight decay on biases, LayerNorm parameters and other 1-D tensors, position and class
# embeddings, FaRL's mask token and the temperature (open_clip's rule: ndim < 2 plus the
# embeddings). Recipes that decay more (ALIP: everything; TencentPretrain: logit_scale and
# projections) override paramwise_cfg.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'positional_embedding': dict(decay_mult=0.),
            'class_embedding': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
        }),
)
warmup_iters = 2000
max_iters = 100000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=warmup_iters,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters),
]
train_cfg = dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
