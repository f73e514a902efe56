# MCF's image-only pre-training data, "LAION-FACE-cropped" (face crops of LAION-Face 20M, "more
# than 20 million face images"; the cropping procedure is not released), read from an LMDB in
# MCF's layout (--use_lmdb_dataset, pretrain.md §3.3):
#
#   data/laion_face_cropped/train_lmdb/    LMDB env: b'length' + the encoded image of every key
#   data/laion_face_cropped/train_keys.txt the keys, one per line, in dataset order (--lmdb_txt)
#
# Pipeline = MCF's: Resize(224) on the short side, horizontal flip, no crop; ImageNet mean/std
# are applied by the model's data preprocessor (MCFPretrainer's default), not here. MCF's
# Resize(224) keeps the aspect ratio and has no crop, so it only stacks into batches when the
# crops are square; ResizeShortCenterCrop is the same resize for square crops and takes the
# central square of any other one instead of failing the batch. Bilinear with antialiasing, as
# torchvision's Resize on PIL images.
#
# Sampling: map-style data under the iteration-based loop -> MMEngine's InfiniteSampler (a new
# seeded permutation per pass, interleaved over ranks, no DataLoader restart between passes,
# which DefaultSampler would need every epoch); one "epoch" of a recipe is
# num_train_images // (batch_size x GPUs) iterations. On resume StreamingIterBasedTrainLoop
# keeps MMEngine's map-style behaviour: it re-draws (and decodes) every batch already trained,
# so the data order continues exactly where it stopped, at the cost of one pass of decoding
# over the images seen so far.
# No validation set: MCF is image-only (recipes set val_cfg = None and test_cfg = None).
data_root = 'data/laion_face_cropped'
lmdb_path = data_root + '/train_lmdb'
keys_file = data_root + '/train_keys.txt'
# (recipes size their epochs with the number of images: `num_train_images` there)

image_size = 224

train_pipeline = [
    dict(type='ResizeShortCenterCrop', size=image_size, interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageText', with_text=False),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='LMDBImages', lmdb_path=lmdb_path, keys_file=keys_file,
                 pipeline=train_pipeline))
# The same crops as an ImageFolder tree (MCF without --use_lmdb_dataset; at least one class
# folder, e.g. data/laion_face_cropped/images/faces/*.jpg):
# train_dataloader = dict(dataset=dict(_delete_=True, type='ImageFolderImages',
#                                      data_root=data_root + '/images', pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
