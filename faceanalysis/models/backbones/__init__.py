from .presets import FLIP80M, MCF, FaRL
from .vit import VIT_ARCHS, FaceViT

__all__ = ['FaceViT', 'VIT_ARCHS', 'FaRL', 'MCF', 'FLIP80M']
