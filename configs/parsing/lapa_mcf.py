# Face parsing on LaPa with the MCF ViT-B/16 encoder (MAE-style pre-training on LAION-Face
# crops), under FaRL's protocol. The MCF paper reports 93.96 on LaPa; FaRL has no MCF run, so
# report.md has no per-class reference.
#
# Needs checkpoints/mcf_vit-b16.pth: MCF's released "ViT-B/16 16 epochs" file (Google Drive link
# in the MCF repository README), renamed. It is loaded as released ({'model': {...}}, the online
# encoder; decoder, target encoder and teacher keys are ignored).
#
# Differences from lapa_farl.py: the MCF preset (erf GELU, LN eps 1e-6, no ln_pre, patch bias,
# the sin-cos table of the checkpoint resized to 28x28 and fine-tuned) and ImageNet mean/std
# (MCF pre-trains on ImageNet-normalised pixels, shared/docs/pretrain.md §3.3).
_base_ = ['./lapa_farl.py']

paper_reference = dict(dataset='lapa', recipe='mcf')

imagenet_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
data_preprocessor = imagenet_norm
model = dict(
    data_preprocessor=imagenet_norm,
    backbone=dict(type='MCF', init_cfg=dict(checkpoint='checkpoints/mcf_vit-b16.pth')),
)
