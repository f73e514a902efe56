# Face alignment on WFLW with the MCF ViT-B/16 encoder (MAE-style pre-training on
# LAION-Face crops), under FaRL's alignment protocol. FaRL has no MCF run, so report.md has no
# paper column for it.
#
# Needs checkpoints/mcf_vit-b16.pth: MCF's released "ViT-B/16 16 epochs" file (Google Drive link
# in the MCF repository README), renamed. It is loaded as released ({'model': {...}}, the online
# encoder; decoder, target encoder and teacher keys are ignored).
#
# Differences from wflw_farl.py (deviations from FaRL's protocol): the MCF preset (erf GELU, LN
# eps 1e-6, no ln_pre, patch bias, the sin-cos table of the checkpoint resized to 28x28 and
# fine-tuned) and ImageNet mean/std (MCF pre-trains on ImageNet-normalised pixels,
# shared/docs/pretrain.md §3.3). Recipe (lr, epochs, EMA, batch) unchanged.
_base_ = ['./wflw_farl.py']

paper_reference = dict(dataset='wflw', recipe='mcf')

model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(type='MCF', init_cfg=dict(checkpoint='checkpoints/mcf_vit-b16.pth')),
)
