# End-to-end check of the face-alignment stack (issue 4: "a tiny-backbone config trained on ~20
# generated 300W-format faces reaches NME (inter-ocular) below 0.05 on them through
# tools/train.py then tools/test.py, in a few minutes on CPU"); run by
# tests/test_tools/test_alignment_e2e.py. FaceAlignmentMetric reports NME x100 (FaRL's units), so
# the bar is nme < 5.0.
#
# configs/alignment/300w_farl.py (IBUG300WDataset, FaceBoxCropMatrix + TanhWarp(wf 0),
# FaceAlignmentEstimator + FaceHeatmapHead, FaceAlignmentMetric) shrunk: a 128 canvas seen at 64
# by a randomly initialised 4-layer patch-8 ViT (8x8 tokens -> 32x32 heatmaps), 64-channel head,
# no random augmentation (it only slows down fitting the same images), one lr for everything,
# iteration-based; evaluated on the 20 training faces through the test pipeline.
_base_ = ['../../../configs/alignment/300w_farl.py']

# no published run to compare with: report.md leaves the paper columns empty
paper_reference = dict(dataset='300w', recipe='tiny-synthetic')
data_root = 'data/synthetic/300W-tiny'
synthetic_data = dict(kind='300w', root=data_root,
                      num_images=dict(train=20, common=2, challenging=2), image_size=128, seed=0)
warped_size = (128, 128)
img_size = 64
embed_dims = 64
max_iters = 400
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    backbone_input_size=(img_size, img_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=embed_dims, num_layers=4, num_heads=4,
                  feedforward_channels=256),
        img_size=img_size, patch_size=8, out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(embed_dim=embed_dims, norm_cfg=norm_cfg),
    head=dict(in_channels=[embed_dims] * 4, channels=64, dropout_ratio=0., norm_cfg=norm_cfg),
)

meta_keys = {{_base_.alignment_meta_keys}}
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='FaceBoxCropMatrix', target_shape=warped_size, face_scale=0.8),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=0.0),
    dict(type='PackPoseInputs', meta_keys=meta_keys, pack_transformed=True),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='FaceBoxCropMatrix', target_shape=warped_size, face_scale=0.8),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=0.0),
    dict(type='PackPoseInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
# "on them": the training faces, through the test pipeline
val_dataloader = dict(
    batch_size=5, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, split='train', pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
custom_hooks = []  # no EMA: 400 steps are too few for a 0.999 average
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1,
                    save_best=None, save_last=True),
)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
visualizer = dict(type='PoseLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
