from .image_text import ImageTextDataPreprocessor

__all__ = ['ImageTextDataPreprocessor']
