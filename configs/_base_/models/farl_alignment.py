# FaRL's face-alignment network (shared/docs/farl_protocol.md §3, §5.1, §5.3, §9) as an mmpose
# top-down estimator on the 512x512 crop canvas (tanh-warp with warp_factor 0 = plain crop):
#   512 canvas -> bilinear resize to 448 (FaceAlignmentEstimator.backbone_input_size)
#   -> FaRL ViT-B/16, taps of blocks 3/5/7/11 (28x28)
#   -> Feature2Pyramid(rescales=[4, 2, 1, 0.5]) = FaRL's fpn1..fpn4
#   -> FaceHeatmapHead: UPerHead(768 channels) -> one 112x112 heatmap per landmark -> sigmoid
#      -> soft-argmax; loss = BCE against truncated Gaussians (sigma 1.25, radius 5 on 128^2)
#      + mean Euclidean distance in normalised crop coordinates; predictions mapped back to
#      original image pixels through the sample's align_matrix.
# SyncBN as in FaRL: single-process runs revert it to BN (MMEngine Runner).
# The dataset configs set num_keypoints / nme_indices (300W 68/(36, 45), WFLW 98/(60, 72),
# AFLW-19 19/(6, 11)); configs/alignment/*.py set the backbone checkpoint.
default_scope = 'mmpose'
data_mode = 'topdown'
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    type='FaceAlignmentEstimator',
    backbone_input_size=(448, 448),
    data_preprocessor=dict(
        type='PoseDataPreprocessor', bgr_to_rgb=True,
        # CLIP's mean/std on the 0-255 scale
        mean=[122.7709383, 116.7460125, 104.0937362],
        std=[68.5005327, 66.6321579, 70.323163]),
    backbone=dict(
        type='FaRL', arch='base', img_size=448, patch_size=16, out_indices=(3, 5, 7, 11),
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth')),
    neck=dict(type='mmseg.Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5],
              norm_cfg=norm_cfg),
    head=dict(type='FaceHeatmapHead', in_channels=[768] * 4, num_keypoints=68, channels=768,
              dropout_ratio=0.1, norm_cfg=norm_cfg, nme_indices=(36, 45)),
    test_cfg=dict(flip_test=False),  # FaRL has no test-time augmentation
)

visualizer = dict(type='PoseLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
