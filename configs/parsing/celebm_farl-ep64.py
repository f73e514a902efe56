# Face parsing on CelebAMask-HQ with FaRL-B/16 pre-trained for 64 epochs (FaRL's reproduced run:
# 89.57).
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth (https://github.com/FacePerceiver/FaRL).
# Everything else as celebm_farl.py.
_base_ = ['./celebm_farl.py']

paper_reference = dict(dataset='celebamaskhq', recipe='farl-ep64')

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')))
