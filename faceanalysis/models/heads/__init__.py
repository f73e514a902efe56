"""mmpose heads of faceanalysis (registered in MODELS, mirrored into mmseg's and mmpose's)."""
from .face_alignment_head import FaceHeatmapHead

__all__ = ['FaceHeatmapHead']
