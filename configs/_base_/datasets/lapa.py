# LaPa with FaRL's parsing pipeline (shared/docs/farl_protocol.md §3.2, §5.2, §5.4, §6).
# Release layout (DS_DATA.md): data_root/{train,val,test}/{images/*.jpg, labels/*.png,
# landmarks/*.txt}; 11 classes in FaRL's order; LaPaDataset gives `landmarks` (106, 2).
#
# Train: 5 GT points (104, 105, 54, 84, 90) -> similarity to FaRL's template on the 512 canvas
#        -> random affine (shift U(+-0.01), rotation N(0, 0.314 rad), scale N(1, 0.1)) -> RoI
#        tanh-warp (wf 0.8) of image (bilinear) and label (nearest, outside = background)
#        -> gray (p 0.1) / gamma (sqrt, id, square) / box blur -> pack. No flip (FaRL has none).
# Test:  the same alignment and warp, no randomness; the label stays at the original resolution
#        and the segmentor maps its logits back there (inverse warp, then argmax).
# FaRL evaluates on the TEST split (val/ is unused), every epoch: val_dataloader = test split.
#
# Low-data runs (§5.6): --cfg-options train_dataloader.dataset.train_data_ratio=0.1
dataset_type = 'LaPaDataset'
data_root = 'data/LaPa'
warped_size = (512, 512)
warp_factor = 0.8
# left/right classes (brows, eyes): used to un-flip predictions and by RandomFlip(swap_seg_labels)
swap_pairs = [(2, 3), (4, 5)]
# = faceanalysis.datasets.transforms.PARSING_META_KEYS (tests/test_configs checks they agree)
parsing_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                     'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                     'align_matrix', 'warp_factor', 'warped_shape', 'align_src_shape')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadLaPaAnnotations'),  # mmseg's LoadAnnotations + checks (0..10, image size)
    dict(type='FaceAlignMatrix', mode='landmarks', target_shape=warped_size),
    dict(type='RandomFaceAffine', target_shape=warped_size),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=warp_factor),
    dict(type='RandomGray', prob=0.1),
    dict(type='RandomGamma'),
    dict(type='RandomBoxBlur', max_ratio=0.01),
    dict(type='PackSegInputs', meta_keys=parsing_meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='FaceAlignMatrix', mode='landmarks', target_shape=warped_size),
    dict(type='TanhWarp', warped_shape=warped_size, warp_factor=warp_factor, warp_label=False),
    dict(type='LoadLaPaAnnotations'),  # mmseg's LoadAnnotations + checks (0..10, image size)
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

val_evaluator = dict(type='FaceParsingMetric')  # mean_f1 over the 10 foreground classes
test_evaluator = val_evaluator
