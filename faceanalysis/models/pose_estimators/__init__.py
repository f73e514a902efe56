"""mmpose pose estimators of faceanalysis (registered in MODELS, mirrored into mmpose's)."""
from .face_alignment_estimator import FaceAlignmentEstimator

__all__ = ['FaceAlignmentEstimator']
