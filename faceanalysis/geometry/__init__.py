"""Face geometry shared by parsing and alignment: alignment matrices and FaRL's RoI tanh-warp.

A bottom layer (numpy, OpenCV, torch only). Conventions, stated once in
:mod:`faceanalysis.geometry.alignment`: pixel centres on integer coordinates, points ``(x, y)``,
shapes ``(H, W)``, 3x3 matrices mapping original image -> aligned canvas.
"""
from .alignment import (FARL_FACE_TEMPLATE, LAPA_ALIGN_INDICES, apply_matrix, crop_resize_matrix,
                        estimate_similarity, face_align_matrix, face_template,
                        random_affine_matrix, resize_matrix, sample_affine_params,
                        scale_about_center, similarity_about_center, similarity_params)
from .tanh_warp import (TANH_CLIP, inverse_transform_points, inverse_warp_grid,
                        inverse_warp_logits, inverse_warp_map, tanh_warp_forward,
                        tanh_warp_inverse, transform_points, unwarp_image, warp_image, warp_map)

__all__ = [
    'FARL_FACE_TEMPLATE', 'LAPA_ALIGN_INDICES', 'apply_matrix', 'crop_resize_matrix',
    'estimate_similarity', 'face_align_matrix', 'face_template', 'random_affine_matrix',
    'resize_matrix', 'sample_affine_params', 'scale_about_center', 'similarity_about_center',
    'similarity_params', 'TANH_CLIP', 'inverse_transform_points', 'inverse_warp_grid',
    'inverse_warp_logits', 'inverse_warp_map', 'tanh_warp_forward', 'tanh_warp_inverse',
    'transform_points', 'unwarp_image', 'warp_image', 'warp_map'
]
