# Face alignment on WFLW with FaRL-B/16 pre-trained 64 epochs on LAION-Face 20M: FaRL's
# recipe, only the checkpoint differs from wflw_farl.py (as in FaRL's configs).
#
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth (https://github.com/FacePerceiver/FaRL).
_base_ = ['./wflw_farl.py']

paper_reference = dict(dataset='wflw', recipe='farl-ep64')

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')))
