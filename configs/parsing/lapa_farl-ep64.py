# Face parsing on LaPa with FaRL-B/16 pre-trained for 64 epochs (FaRL's reproduced run: 94.04).
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth (https://github.com/FacePerceiver/FaRL).
# Everything else as lapa_farl.py.
_base_ = ['./lapa_farl.py']

paper_reference = dict(dataset='lapa', recipe='farl-ep64')

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')))
