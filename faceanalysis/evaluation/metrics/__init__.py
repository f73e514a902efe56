"""Metrics of faceanalysis (registered in :data:`faceanalysis.registry.METRICS`)."""
from .face_parsing_metric import ABSENT_CLASS_MODES, FaceParsingMetric, confusion_matrix_metrics

__all__ = ['ABSENT_CLASS_MODES', 'FaceParsingMetric', 'confusion_matrix_metrics']
