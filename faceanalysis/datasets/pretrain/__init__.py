"""Pre-training data: image-text pairs streamed from tar shards or read from caption lists,
and the transforms of image-text pre-training pipelines (issue 5).

Importing this package registers :class:`WebDatasetImageText`, :class:`ImageTextTsvDataset`,
:class:`ImageTextFolderDataset`, the image-only :class:`ImageFolderImages` and
:class:`LMDBImages` (MCF) and the transforms of :mod:`.transforms`.
"""
from .decoding import ImageDecodeError, SkipCounter, decode_caption, decode_image_rgb
from .image_folder import EncodedImageDataset, ImageFolderImages
from .lmdb_images import LMDBImages, lmdb_environment, read_lmdb_keys
from .shards import count_samples, expand_braces, expand_urls, load_shard_sizes, split_shards
from .transforms import (PackImageText, RandomResizedCropImage, ResizeShortCenterCrop,
                         SquashResize, TokenizeText, build_pipeline, build_transforms,
                         resize_image)
from .tsv import ImageTextFolderDataset, ImageTextTsvDataset
from .webdataset import WebDatasetImageText, iter_tar_samples, shuffle_buffered

__all__ = [
    'ImageDecodeError', 'SkipCounter', 'decode_caption', 'decode_image_rgb', 'count_samples',
    'expand_braces', 'expand_urls', 'load_shard_sizes', 'split_shards', 'PackImageText',
    'RandomResizedCropImage', 'ResizeShortCenterCrop', 'SquashResize', 'TokenizeText',
    'build_pipeline', 'build_transforms', 'resize_image', 'ImageTextFolderDataset',
    'ImageTextTsvDataset', 'WebDatasetImageText', 'iter_tar_samples', 'shuffle_buffered',
    'EncodedImageDataset', 'ImageFolderImages', 'LMDBImages', 'lmdb_environment', 'read_lmdb_keys'
]
