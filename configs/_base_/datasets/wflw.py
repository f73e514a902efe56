# WFLW with HRNet's CSV annotations (shared/docs/farl_protocol.md §5.3, §6.2, §7.2; DS_DATA.md):
# train 7,500; evaluation on the full test set (2,500) in one run, each sample tagged with the
# attribute subsets (largepose, expression, illumination, makeup, occlusion, blur) whose CSV
# holds it, so FaceAlignmentMetric reports nme (inter-ocular, test), AUC/FR at 0.1 and every
# subset.
dataset_type = 'WFLWCSVDataset'
data_root = 'data/WFLW'
num_keypoints = 98
face_scale = 0.8  # FaRL's scale_mu for 300W and WFLW (1.0 for AFLW-19)
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

val_evaluator = dict(type='FaceAlignmentMetric', dataset='wflw')
test_evaluator = val_evaluator
