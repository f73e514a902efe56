# LAION-Face as img2dataset writes it (--output_format webdataset --resize_mode no): tar shards of
# {key}.jpg + {key}.txt + {key}.json, streamed per rank and worker (WebDatasetImageText).
# FaRL's 20M subset is the img2dataset parts 0,2,5,8,13,15,17,18,21,22,24,25,28 of 32
# (pretrain.md §2.3): one output folder per part under data_root; every *.tar in them is used.
# A held-out image-text list (path<TAB>caption) drives the zero-shot retrieval evaluation.
data_root = 'data/laion_face'
laion_face_20m_parts = [0, 2, 5, 8, 13, 15, 17, 18, 21, 22, 24, 25, 28]
train_urls = [f'{data_root}/part{part:02d}' for part in laion_face_20m_parts]
num_train_samples = 20_000_000  # set to the downloaded count (sizes.json overrides nothing)

image_size = 224
context_length = 77
clip_mean = (122.7709383, 116.7460125, 104.09373615)
clip_std = (68.5005327, 66.6321579, 70.32316305)

train_pipeline = [
    dict(type='RandomResizedCropImage', size=image_size, scale=(0.5, 1.0),
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TokenizeText', keys=('text', ), context_length=context_length),
    dict(type='PackImageText'),
]
val_pipeline = [
    dict(type='ResizeShortCenterCrop', size=image_size, interpolation='bicubic'),
    dict(type='TokenizeText', keys=('text', ), context_length=context_length),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=None,  # the stream shards itself over ranks and workers
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='WebDatasetImageText', urls=train_urls, num_samples=num_train_samples,
                 shuffle_buffer=5000, shuffle_initial=1000, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageTextTsvDataset', data_root=data_root + '/heldout',
                 ann_file='captions.tsv', columns=('path', 'text'), pipeline=val_pipeline,
                 test_mode=True))
val_evaluator = dict(type='ImageTextRetrievalMetric', topk=(1, 5, 10))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
