# Face alignment on AFLW-19 with FaRL-B/16 pre-trained 64 epochs on LAION-Face 20M: FaRL's
# recipe, only the checkpoint differs from aflw19_farl.py (as in FaRL's configs).
#
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth (https://github.com/FacePerceiver/FaRL).
_base_ = ['./aflw19_farl.py']

paper_reference = dict(dataset='aflw19', recipe='farl-ep64')

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')))
