"""Evaluation of faceanalysis: task metrics, FaRL's published numbers and the test reports.

Importing this package registers the metrics (``FaceParsingMetric``, ``FaceAlignmentMetric``,
``ImageTextRetrievalMetric``) into
:data:`faceanalysis.registry.METRICS` and its mmseg/mmpose mirrors. Configs that run in mmseg's or
mmpose's scope must import it (``custom_imports``), like ``faceanalysis.models``.
"""
from .metrics import ABSENT_CLASS_MODES, FaceParsingMetric, confusion_matrix_metrics
from .metrics import ALIGNMENT_DEFAULTS, FaceAlignmentMetric, alignment_key_map
from .metrics import ImageTextRetrievalMetric, image_text_retrieval_metrics
from .paper_results import (ALIGNMENT_RESULTS, PARSING_CLASSES, PARSING_RESULTS, ComparisonRow,
                            compare_with_paper, paper_reference)
from .report import write_comparison_report, write_parsing_report
from .report import write_alignment_report

__all__ = [
    'ABSENT_CLASS_MODES', 'FaceParsingMetric', 'confusion_matrix_metrics', 'ALIGNMENT_RESULTS',
    'PARSING_CLASSES', 'PARSING_RESULTS', 'ComparisonRow', 'compare_with_paper',
    'paper_reference', 'write_comparison_report', 'write_parsing_report', 'ALIGNMENT_DEFAULTS',
    'FaceAlignmentMetric', 'alignment_key_map', 'write_alignment_report',
    'ImageTextRetrievalMetric', 'image_text_retrieval_metrics'
]
