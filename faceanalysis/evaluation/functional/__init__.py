"""Pure metric functions of faceanalysis (no registry): numpy/SciPy, and torch for retrieval."""
from .alignment import (ALIGNMENT_NORM_INDICES, BOX_NORMALIZERS, LANDMARK_NORMALIZERS,
                        NORMALIZERS, alignment_dataset, box_diag_norm, box_norm, ced_auc_fr,
                        ced_curve, inter_ocular_norm, inter_pupil_norm, landmark_distance_norm,
                        nme_per_image, simpson_integral, threshold_suffix)
from .retrieval import (best_positive_rank, build_caption_groups, embedding_retrieval_recall,
                        positive_pairs, recall_at_k, retrieval_recall)

__all__ = [
    'ALIGNMENT_NORM_INDICES', 'BOX_NORMALIZERS', 'LANDMARK_NORMALIZERS', 'NORMALIZERS',
    'alignment_dataset', 'box_diag_norm', 'box_norm', 'ced_auc_fr', 'ced_curve',
    'inter_ocular_norm', 'inter_pupil_norm', 'landmark_distance_norm', 'nme_per_image',
    'simpson_integral', 'threshold_suffix', 'best_positive_rank', 'build_caption_groups',
    'embedding_retrieval_recall', 'positive_pairs', 'recall_at_k', 'retrieval_recall'
]
