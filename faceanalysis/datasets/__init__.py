"""Datasets, transforms and synthetic data of faceanalysis."""
from . import pretrain  # noqa: F401  (pre-training datasets and transforms)
from . import transforms  # noqa: F401  (registers the pipeline transforms)
from .alignment import AFLW19Dataset, IBUG300WDataset, WFLWCSVDataset
from .celebamaskhq import (CELEBAMASKHQ_CLASSES, CELEBAMASKHQ_PARTS, CELEBAMASKHQ_SPLIT_SIZES,
                           CelebAMaskHQDataset, LoadCelebAMaskHQAnnotations,
                           build_celebamaskhq_label)
from .lapa import LAPA_SPLIT_SIZES, LaPaDataset, LoadLaPaAnnotations
from .synthetic import (LAPA_CLASSES, LAPA_PALETTE, make_synthetic_lapa, prepare_synthetic_data,
                        read_lapa_landmarks)
from .synthetic_alignment import (make_synthetic_300w, make_synthetic_aflw19,
                                  make_synthetic_wflw)
from .synthetic_celebamaskhq import make_synthetic_celebamaskhq
from .synthetic_face_crops import write_image_folder, write_lmdb_images
from .synthetic_image_text import (caption_content, make_toy_corpus, write_image_text_shards,
                                   write_image_text_tsv)

__all__ = [
    'LAPA_CLASSES', 'LAPA_PALETTE', 'make_synthetic_lapa', 'prepare_synthetic_data',
    'read_lapa_landmarks', 'LaPaDataset', 'LoadLaPaAnnotations', 'LAPA_SPLIT_SIZES',
    'CelebAMaskHQDataset', 'LoadCelebAMaskHQAnnotations', 'build_celebamaskhq_label',
    'CELEBAMASKHQ_CLASSES', 'CELEBAMASKHQ_PARTS', 'CELEBAMASKHQ_SPLIT_SIZES',
    'make_synthetic_celebamaskhq'
]
__all__ += [
    'IBUG300WDataset', 'WFLWCSVDataset', 'AFLW19Dataset', 'make_synthetic_300w',
    'make_synthetic_wflw', 'make_synthetic_aflw19'
]
__all__ += [
    'caption_content', 'make_toy_corpus', 'write_image_folder', 'write_image_text_shards',
    'write_image_text_tsv', 'write_lmdb_images'
]
