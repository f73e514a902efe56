# Face parsing on LaPa with FaRL-B/16 (LAION-Face 20M, 16 epochs): FaRL's recipe
# (shared/docs/farl_protocol.md; paper 93.88 mean F1, best epoch on the test set).
#
#   python tools/train.py configs/parsing/lapa_farl.py                       # 1 GPU
#   bash tools/dist_train.sh configs/parsing/lapa_farl.py 8                  # FaRL: 8 GPUs
#   python tools/test.py configs/parsing/lapa_farl.py work_dirs/lapa_farl/best_mean_f1_epoch_N.pth
#   python tools/test.py configs/parsing/lapa_farl.py work_dirs/lapa_farl/epoch_300.pth
# Each test writes work_dirs/lapa_farl/report.{md,json} (per-class F1, mean, mIoU, FaRL's numbers
# beside ours); testing the best then the last checkpoint lists both, as FaRL reports them (§7.3).
# --show-dir DIR: image | ground truth | prediction PNGs. Inference on one image:
# demo/face_parsing_demo.py, faceanalysis.apis.FaceParser.
#
# Needs checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth (https://github.com/FacePerceiver/FaRL,
# "FaRL-Base-Patch16-LAIONFace20M-ep16") and LaPa under data/LaPa (DS_DATA.md). tools/train.py
# stops at once, naming the file, when the checkpoint is missing.
#
# Batch: 5 per GPU; the recipe assumes 8 GPUs = 40. With fewer GPUs either keep the per-GPU batch
# and add `--cfg-options auto_scale_lr.enable=True` (linear lr scaling to the global batch), or
# accumulate: `optim_wrapper.accumulative_counts=8` on one GPU.
#
# Variants: train_dataloader.dataset.train_data_ratio=0.1 (low data, §5.6),
# model.flip_test=True (flip TTA with left/right swap, not in FaRL),
# lapa_farl_freeze-backbone.py (§5.5).
#
# Where this differs from FaRL (all small, see farl_protocol.md §9):
# * EMA: MMEngine's first EMA update copies the weights after the first optimizer step (FaRL
#   copies them before it); afterwards the same 0.999 per step, floating-point buffers included
#   (the integer BN `num_batches_tracked` keeps its first copy, FaRL copies it every step; BN
#   with momentum 0.1 never reads it).
# * Data order, padding and seeds follow MMEngine's DefaultSampler (FaRL pads the dataset to a
#   multiple of 40 with repeated samples and seeds 123 + rank).
_base_ = [
    '../_base_/models/farl_parsing.py',
    '../_base_/datasets/lapa.py',
    '../_base_/schedules/farl_parsing_300e.py',
]

# what tools/test.py compares the results with in report.md (faceanalysis.evaluation)
paper_reference = dict(dataset='lapa', recipe='farl-ep16')

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
    decode_head=dict(num_classes=11),
)
