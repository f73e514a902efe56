# Face alignment on WFLW with FaRL-B/16 (LAION-Face 20M, 16 epochs): FaRL's recipe
# (shared/docs/farl_protocol.md §5.1, §5.3, §7.2; FaRL's numbers in report.md).
#
#   python tools/train.py configs/alignment/wflw_farl.py                       # 1 GPU
#   bash tools/dist_train.sh configs/alignment/wflw_farl.py 8                  # FaRL: 8 GPUs
#   python tools/test.py configs/alignment/wflw_farl.py \
#       work_dirs/wflw_farl/best_nme_epoch_N.pth
#
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth (https://github.com/FacePerceiver/FaRL,
# "FaRL-Base-Patch16-LAIONFace20M-ep16")
# and WFLW under data/WFLW (DS_DATA.md); evaluation on the test set with its six attribute
# subsets tagged.
#
# Recipe: AdamW wd 1e-5, lr 1e-2 neck/head and 1e-4 backbone (lr_mult 0.01), 150 epochs,
# constant lr,
# batch 5 per GPU x 8 GPUs = 40, EMA 0.999 per step with buffers, evaluation every epoch on the
# test set (EMA weights), best (save_best='nme', rule='less') and last checkpoints kept.
# With fewer GPUs keep the per-GPU batch and add `--cfg-options auto_scale_lr.enable=True`, or
# accumulate: `optim_wrapper.accumulative_counts=8` on one GPU.
#
# Where this differs from FaRL (all small, see farl_protocol.md §9):
# * EMA: MMEngine's first EMA update copies the weights after the first optimizer step (FaRL
#   copies them before it); afterwards the same 0.999 per step, buffers included.
# * Data order, padding and seeds follow MMEngine's DefaultSampler (FaRL pads the training set
#   to a multiple of 40 with repeated samples and seeds 123 + rank).
# * "best" is selected by the metric's `nme` on the test set, as FaRL's reported best epoch.
_base_ = [
    '../_base_/models/farl_alignment.py',
    '../_base_/datasets/wflw.py',
    '../_base_/schedules/farl_alignment_150e.py',
]

# what tools/test.py compares the results with in report.md (faceanalysis.evaluation)
paper_reference = dict(dataset='wflw', recipe='farl-ep16')

model = dict(
    backbone=dict(
        type='FaRL',
        arch='base',
        img_size=448,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        init_cfg=dict(_delete_=True, type='Pretrained',
                      checkpoint='checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth'),
    ),
    head=dict(num_keypoints=98, nme_indices=(60, 72)),
)
