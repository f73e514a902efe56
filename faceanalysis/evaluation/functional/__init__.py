"""Pure numpy/SciPy metric functions of faceanalysis (no registry, no torch)."""
from .alignment import (ALIGNMENT_NORM_INDICES, BOX_NORMALIZERS, LANDMARK_NORMALIZERS,
                        NORMALIZERS, alignment_dataset, box_diag_norm, box_norm, ced_auc_fr,
                        ced_curve, inter_ocular_norm, inter_pupil_norm, landmark_distance_norm,
                        nme_per_image, simpson_integral, threshold_suffix)

__all__ = [
    'ALIGNMENT_NORM_INDICES', 'BOX_NORMALIZERS', 'LANDMARK_NORMALIZERS', 'NORMALIZERS',
    'alignment_dataset', 'box_diag_norm', 'box_norm', 'ced_auc_fr', 'ced_curve',
    'inter_ocular_norm', 'inter_pupil_norm', 'landmark_distance_norm', 'nme_per_image',
    'simpson_integral', 'threshold_suffix'
]
