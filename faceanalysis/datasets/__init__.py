"""Datasets, transforms and synthetic data of faceanalysis."""
from . import transforms  # noqa: F401  (registers the pipeline transforms)
from .synthetic import (LAPA_CLASSES, LAPA_PALETTE, make_synthetic_lapa, prepare_synthetic_data,
                        read_lapa_landmarks)

__all__ = [
    'LAPA_CLASSES', 'LAPA_PALETTE', 'make_synthetic_lapa', 'prepare_synthetic_data',
    'read_lapa_landmarks'
]
