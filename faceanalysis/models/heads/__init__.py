"""Heads of faceanalysis (registered in MODELS, mirrored into mmseg's and mmpose's)."""
from .face_alignment_head import FaceHeatmapHead
from .mim_head import MIMHead

__all__ = ['FaceHeatmapHead', 'MIMHead']
