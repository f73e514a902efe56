# Generated toy image-text corpus (coloured shapes, "a red circle"): train shards in
# img2dataset's WebDataset format, a held-out TSV for zero-shot retrieval. Written on first use by
# tools/train.py from `synthetic_data` (faceanalysis.datasets.synthetic_image_text).
# Every sample also carries a second caption (`text_aux`, member `{key}.cap.txt`), which ALIP
# uses and the other recipes ignore.
data_root = 'data/synthetic/toy_image_text'
synthetic_data = dict(kind='toy_image_text', root=data_root, num_train=1024, num_val=120,
                      image_size=64, samples_per_shard=64, seed=0)

image_size = 64
context_length = 16
train_pipeline = [
    dict(type='RandomResizedCropImage', size=image_size, scale=(0.7, 1.0),
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TokenizeText', keys=('text', 'text_aux'), context_length=context_length),
    dict(type='PackImageText'),
]
val_pipeline = [
    dict(type='SquashResize', size=image_size, interpolation='bicubic'),
    dict(type='TokenizeText', keys=('text', 'text_aux'), context_length=context_length),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=None,  # the stream shards itself over ranks and workers
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='WebDatasetImageText', urls=data_root + '/train', num_samples=1024,
                 aux_text_key='cap.txt',
                 shuffle_buffer=256, shuffle_initial=64, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=40,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageTextTsvDataset', data_root=data_root + '/val',
                 ann_file='captions.tsv', columns=('path', 'text', 'text_aux'), pipeline=val_pipeline,
                 test_mode=True))
val_evaluator = dict(type='ImageTextRetrievalMetric', topk=(1, 5, 10))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
