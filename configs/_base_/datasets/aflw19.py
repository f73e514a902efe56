# AFLW-19 from AFLWinfo_release.mat (shared/docs/farl_protocol.md §5.3, §6.2, §7.2; DS_DATA.md):
# FaRL's `ra` permutation split, train 20,000 / test 4,386; evaluation on the full test set in
# one run with the frontal faces (all 19 points visible) tagged, so FaceAlignmentMetric reports
# nme (box-normalised, full), AUC/FR at 0.07 and the frontal subset. GT box from the file.
dataset_type = 'AFLW19Dataset'
data_root = 'data/AFLW'
num_keypoints = 19
face_scale = 1.0  # FaRL's scale_mu for AFLW-19 (0.8 for 300W and WFLW)
warped_size = (512, 512)
alignment_meta_keys = ('id', 'img_id', 'img_path', 'category_id', 'crowd_index', 'ori_shape',
                       'img_shape', 'input_size', 'input_center', 'input_scale', 'flip',
                       'flip_direction', 'flip_indices', 'raw_ann_info', 'dataset_name',
                       'face_box', 'gt_keypoints', 'subset', 'split', 'sample_name',
                       'align_matrix', 'warp_factor', 'warped_shape', 'align_src_shape')

train_pipeline = [
    dict(type='LoadImage'),
    # the random scale U(mu - 0.1, mu + 0.1) holds the face scale (FaRL's
    # UpdateRandomTransformMatrix), hence face_scale 1.0 here and face_scale=mu at test time
    dict(type='FaceBoxCropMatrix', target_shape=warped_size, face_scale=1.0),
    dict(type='RandomFaceAffine', target_shape=warped_size, shift=0.05, rotation=0.174,
         scale=0.1, scale_mu=face_scale, distribution='uniform'),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=0.0),
    dict(type='RandomOcclusion'),
    dict(type='NoiseFusion', prob=0.5),
    dict(type='RandomGray', prob=0.1),
    dict(type='RandomGamma'),
    dict(type='RandomBoxBlur', max_ratio=0.01),
    dict(type='PackPoseInputs', meta_keys=alignment_meta_keys, pack_transformed=True),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='FaceBoxCropMatrix', target_shape=warped_size, face_scale=face_scale),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=0.0),
    dict(type='PackPoseInputs', meta_keys=alignment_meta_keys),
]

train_dataloader = dict(
    batch_size=5,  # per GPU; FaRL: 5 x 8 GPUs = 40
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=5,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 pipeline=test_pipeline),
)
test_dataloader = val_dataloader

val_evaluator = dict(type='FaceAlignmentMetric', dataset='aflw19')
test_evaluator = val_evaluator
