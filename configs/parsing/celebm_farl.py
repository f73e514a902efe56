# Face parsing on CelebAMask-HQ with FaRL-B/16 (LAION-Face 20M, 16 epochs): FaRL's recipe
# (shared/docs/farl_protocol.md; paper 89.56 mean F1 over 18 foreground classes, best epoch).
#
#   python tools/train.py configs/parsing/celebm_farl.py
#   bash tools/dist_train.sh configs/parsing/celebm_farl.py 8                # FaRL: 8 GPUs
#   python tools/test.py configs/parsing/celebm_farl.py \
#       work_dirs/celebm_farl/best_mean_f1_epoch_N.pth
#
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth (https://github.com/FacePerceiver/FaRL)
# and CelebAMask-HQ under data/CelebAMask-HQ (DS_DATA.md). tools/train.py stops at once, naming
# the file, when the checkpoint is missing.
#
# Batch: 5 per GPU; the recipe assumes 8 GPUs = 40 (see lapa_farl.py for fewer GPUs:
# auto_scale_lr.enable=True or optim_wrapper.accumulative_counts=8). Other variants and the
# differences from FaRL: as lapa_farl.py. FaRL's best CelebAMask-HQ epoch is early (25): keep the
# per-epoch evaluation.
_base_ = [
    '../_base_/models/farl_parsing.py',
    '../_base_/datasets/celebamaskhq.py',
    '../_base_/schedules/farl_parsing_300e.py',
]

paper_reference = dict(dataset='celebamaskhq', recipe='farl-ep16')

model = dict(
    swap_pairs={{_base_.swap_pairs}},
    backbone=dict(
        type='FaRL',
        arch='base',
        img_size=448,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        init_cfg=dict(_delete_=True, type='Pretrained',
                      checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth'),
    ),
    decode_head=dict(num_classes=19),
)
