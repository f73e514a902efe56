"""Metrics of faceanalysis (registered in :data:`faceanalysis.registry.METRICS`)."""
from .face_alignment_metric import ALIGNMENT_DEFAULTS, FaceAlignmentMetric, alignment_key_map
from .face_parsing_metric import ABSENT_CLASS_MODES, FaceParsingMetric, confusion_matrix_metrics
from .retrieval_metric import ImageTextRetrievalMetric, image_text_retrieval_metrics

__all__ = ['ABSENT_CLASS_MODES', 'FaceParsingMetric', 'confusion_matrix_metrics',
           'ALIGNMENT_DEFAULTS', 'FaceAlignmentMetric', 'alignment_key_map',
           'ImageTextRetrievalMetric', 'image_text_retrieval_metrics']
