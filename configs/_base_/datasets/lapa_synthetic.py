# Synthetic LaPa (faceanalysis.datasets.make_synthetic_lapa) in the release layout:
#   data_root/{train,val,test}/{images/*.jpg, labels/*.png, landmarks/*.txt}
# tools/train.py and tools/test.py generate it on first use from `synthetic_data`.
# Images are resized to the model input; test labels stay at their original size, and mmseg
# resizes the predictions back to it.
dataset_type = 'BaseSegDataset'
data_root = 'data/synthetic/LaPa'
img_scale = (448, 448)

synthetic_data = dict(
    kind='lapa',
    root=data_root,
    num_images=dict(train=16, val=4, test=4),
    image_size=128,
    seed=0,
)

# LaPa label values 0..10 in FaRL's order (shared/docs/farl_protocol.md §2.3), left = image left
metainfo = dict(
    classes=('background', 'skin', 'left_eyebrow', 'right_eyebrow', 'left_eye', 'right_eye',
             'nose', 'upper_lip', 'inner_mouth', 'lower_lip', 'hair'),
    palette=[[0, 0, 0], [204, 153, 128], [102, 51, 0], [153, 76, 0], [0, 153, 255],
             [0, 204, 204], [255, 178, 102], [255, 0, 76], [127, 0, 51], [204, 0, 102],
             [76, 38, 0]],
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]


train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train/images', seg_map_path='train/labels'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        metainfo=metainfo,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='test/images', seg_map_path='test/labels'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        metainfo=metainfo,
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

# Placeholder until the face-parsing F1 metric exists: IoUMetric's means include background and
# its mFscore is not FaRL's F1 (stack.md P14).
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU', 'mFscore'])
test_evaluator = val_evaluator
