# FaRL face parsing network (shared/docs/farl_protocol.md §2.1, §9): FaRL ViT-B/16 at 448,
# taps of blocks 3/5/7/11 -> Feature2Pyramid (x4, x2, x1, x0.5) -> UPerHead, cross entropy.
# SyncBN as in the real recipe: single-process runs revert it to BN (MMEngine Runner), and
# CPU-distributed runs get BN from faceanalysis.compat.setup_cpu_distributed.
default_scope = 'mmseg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
img_size = 448
embed_dims = 768

# OpenAI CLIP normalisation, on 0..255 RGB
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709383, 116.7460125, 104.0937362],
    std=[68.5005327, 66.6321579, 70.323163],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(img_size, img_size),
)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='FaRL',
        arch='base',
        img_size=img_size,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        drop_path_rate=0.,
        init_cfg=None,  # dict(type='Pretrained', checkpoint='checkpoints/FaRL-Base-...pth')
    ),
    neck=dict(type='Feature2Pyramid', embed_dim=embed_dims, rescales=[4, 2, 1, 0.5],
              norm_cfg=norm_cfg),
    decode_head=dict(
        type='UPerHead',
        in_channels=[embed_dims] * 4,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=embed_dims,
        dropout_ratio=0.1,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

# the config adds default_hooks.visualization=dict(type='SegVisualizationHook') to draw
# predictions (tools/test.py --show-dir adds it when missing)
visualizer = dict(type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
