from .presets import FLIP80M, MCF, FaRL
from .text_transformer import TextTowerMixin, TextTransformer
from .vit import VIT_ARCHS, FaceViT

__all__ = ['FaceViT', 'VIT_ARCHS', 'FaRL', 'MCF', 'FLIP80M', 'TextTowerMixin', 'TextTransformer']
