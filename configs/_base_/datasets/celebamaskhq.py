# CelebAMask-HQ with FaRL's parsing pipeline (shared/docs/farl_protocol.md §2.3, §3.2, §5.2,
# §6).
# Release layout (DS_DATA.md): data_root/{CelebA-HQ-img/*.jpg (1024x1024),
# CelebAMask-HQ-mask-anno/{0..14}/*.png (512x512), CelebA-HQ-to-CelebA-mapping.txt,
# list_eval_partition.txt}; 19 classes in FaRL's overwrite order, label built at 512 by
# LoadCelebAMaskHQAnnotations (or read from the converter's cache).
#
# No landmarks: the image is resized 1024 -> 512 (cv2.INTER_LINEAR, as FaRL) and the alignment
# matrix is the identity; warp factor 0 (a plain crop). Train: random affine about the canvas
# centre (same distributions as LaPa), gray/gamma/blur. Test: identity, predictions in the 512
# frame of the labels. FaRL evaluates on the TEST partition, every epoch.
#
# Low-data runs (§5.6): --cfg-options train_dataloader.dataset.train_data_ratio=0.1
dataset_type = 'CelebAMaskHQDataset'
data_root = 'data/CelebAMask-HQ'
warped_size = (512, 512)
warp_factor = 0.0
# FaRL's 19-class order: ears (rr/lr = 4/5), brows (rb/lb = 6/7), eyes (re/le = 8/9)
swap_pairs = [(4, 5), (6, 7), (8, 9)]
# = faceanalysis.datasets.transforms.PARSING_META_KEYS (tests/test_configs checks they agree)
parsing_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                     'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                     'align_matrix', 'warp_factor', 'warped_shape', 'align_src_shape')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCelebAMaskHQAnnotations'),
    dict(type='Resize', scale=warped_size, keep_ratio=False),  # image 1024 -> 512; label is 512
    dict(type='FaceAlignMatrix', mode='identity', target_shape=warped_size),
    dict(type='RandomFaceAffine', target_shape=warped_size),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=warp_factor),
    dict(type='RandomGray', prob=0.1),
    dict(type='RandomGamma'),
    dict(type='RandomBoxBlur', max_ratio=0.01),
    dict(type='PackSegInputs', meta_keys=parsing_meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=warped_size, keep_ratio=False),
    dict(type='FaceAlignMatrix', mode='identity', target_shape=warped_size),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=warp_factor, warp_label=False),
    dict(type='LoadCelebAMaskHQAnnotations'),
    dict(type='PackSegInputs', meta_keys=parsing_meta_keys),
]

train_dataloader = dict(
    batch_size=5,  # per GPU; FaRL: 5 x 8 GPUs = 40
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', train_data_ratio=1.0,
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=5,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 pipeline=test_pipeline),
)
test_dataloader = val_dataloader

val_evaluator = dict(type='FaceParsingMetric')  # mean_f1 over the 18 foreground classes
test_evaluator = val_evaluator
