# FaRL's face-parsing network (shared/docs/farl_protocol.md §2.1, §2.2, §9) on the warped canvas:
#   512x512 canvas -> bilinear resize to 448 (FaceParsingSegmentor.backbone_input_size)
#   -> FaRL ViT-B/16, taps of blocks 3/5/7/11 (28x28)
#   -> Feature2Pyramid(rescales=[4, 2, 1, 0.5]) = FaRL's fpn1..fpn4 exactly: ConvT-SyncBN-GELU-ConvT
#      (112), ConvT (56), identity (28), max-pool (14)
#   -> UPerHead(768 channels, pool scales 1/2/3/6, Dropout2d 0.1) -> 112x112 logits
#   -> bilinear upsample to the 512 canvas -> cross entropy against the warped label (plain mean).
# Prediction: logits on the canvas, inverse tanh-warp to the original image, argmax (§3.4).
#
# SyncBN as in FaRL: single-process runs revert it to BN (MMEngine Runner); CPU-distributed runs
# get BN from faceanalysis.compat.setup_cpu_distributed.
#
# Initialisation as FaRL's (it never calls init_weights()): `decode_head.init_cfg=None` keeps
# PyTorch's default init of `conv_seg` instead of mmseg's Normal(0, 0.01); the ConvModules
# re-draw the same Kaiming init they got at construction; Feature2Pyramid keeps PyTorch's default
# init; the backbone loads its checkpoint through `init_cfg=dict(type='Pretrained', ...)`, which
# each configs/parsing/*.py sets.
_base_ = ['./farl_upernet.py']

# The dataset bases define `warped_size` and `swap_pairs` (LaPa values repeated here: MMEngine
# forbids a top-level key in two bases of one config).

# every sample is a 512 canvas: pad to that (a no-op), never to the backbone's 448
data_preprocessor = dict(size=(512, 512))
model = dict(
    type='FaceParsingSegmentor',
    data_preprocessor=dict(size=(512, 512)),
    backbone_input_size=(448, 448),
    swap_pairs=[(2, 3), (4, 5)],  # LaPa; configs set the dataset's
    flip_test=False,  # FaRL has no test-time augmentation (§2.4); True: flip TTA with L/R swap
    freeze_backbone=False,  # True: FaRL's freeze_backbone recipe (§5.5)
    decode_head=dict(
        num_classes=11,
        init_cfg=None,
        # FaRL: F.cross_entropy(mean) at 512x512, no class weights. avg_non_ignore=False divides by
        # every pixel; ignore_index 255 never occurs in warped labels (outside = background 0).
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=False),
    ),
)
