"""Segmentors (registered in ``faceanalysis.registry.MODELS``, mirrored into mmseg's)."""
from .face_parsing_segmentor import FaceParsingSegmentor, swap_permutation

__all__ = ['FaceParsingSegmentor', 'swap_permutation']
