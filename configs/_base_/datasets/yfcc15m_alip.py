# ALIP's data: YFCC15M (DeCLIP version, 15,061,515 pairs downloaded) with one OFA synthetic
# caption per image (pretrain.md §6.3), as WebDataset shards streamed per rank and worker:
#
#   data/yfcc15m/train/{00000..NNNNN}.tar   members {key}.jpg, {key}.txt (raw text),
#                                           {key}.cap.txt (the synthetic caption)
#
# ALIP stores both captions, already tokenised, in one MXNet record; `{key}.cap.txt` is our
# member name for the second text (aux_text_key), so convert its records (or img2dataset output
# plus the caption files) into this layout. Both texts are tokenised here with CLIP's BPE to 77
# tokens, `text` and `text_aux` of the data contract.
#
# Augmentation = ALIP's DALI train pipeline: a random crop of 70-100 % of the area with aspect
# 0.8-1.25 (100 attempts) resized to 224x224 bilinear, a coin-flip mirror; CLIP mean/std in the
# model's data preprocessor. A held-out image-caption list (path<TAB>caption) drives a zero-shot
# retrieval evaluation during training (ALIP evaluates on COCO/Flickr afterwards; any held-out
# pairs in this format work, e.g. Flickr30k's 1k test images with one caption each).
data_root = 'data/yfcc15m'
train_urls = data_root + '/train'  # every *.tar in the folder
num_train_samples = 15_061_515

image_size = 224
context_length = 77

train_pipeline = [
    dict(type='RandomResizedCropImage', size=image_size, scale=(0.7, 1.0), ratio=(0.8, 1.25),
         interpolation='bilinear', max_attempts=100),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TokenizeText', keys=('text', 'text_aux'), context_length=context_length),
    dict(type='PackImageText'),
]
# open_clip's evaluation transform: short side to 224 (bicubic), central crop.
val_pipeline = [
    dict(type='ResizeShortCenterCrop', size=image_size, interpolation='bicubic'),
    dict(type='TokenizeText', keys=('text', ), context_length=context_length),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=512,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=None,  # the stream shards itself over ranks and workers
    collate_fn=dict(type='default_collate'),
    # DALI's reader shuffles with initial_fill=16384 per rank; the buffer here is per worker
    # (10 x 2,000 encoded images per rank, about 1 GB for ~50 kB JPEGs)
    dataset=dict(type='WebDatasetImageText', urls=train_urls, num_samples=num_train_samples,
                 aux_text_key='cap.txt', shuffle_buffer=2000, shuffle_initial=1000,
                 pipeline=train_pipeline))
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
