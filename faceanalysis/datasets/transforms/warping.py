"""Geometric face transforms of FaRL's parsing protocol for mmseg pipelines.

A LaPa training pipeline (shared/docs/farl_protocol.md §3, §5.2)::

    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),                       # + 'landmarks' (106, 2) from the dataset
    dict(type='FaceAlignMatrix', mode='landmarks'),     # 'align_matrix': 5 points -> template
    dict(type='RandomFaceAffine'),                      # 'align_matrix' = M_rand @ align_matrix
    dict(type='TanhWarp', warp_factor=0.8),             # img + gt_seg_map on the 512 canvas
    dict(type='RandomGray'), dict(type='RandomGamma'), dict(type='RandomBoxBlur'),
    dict(type='PackSegInputs', meta_keys=PARSING_META_KEYS)

At test time drop ``RandomFaceAffine`` and the colour transforms and use
``TanhWarp(warp_label=False)``: the ground truth stays at the original resolution for the metric,
and the prediction is mapped back with ``faceanalysis.geometry.inverse_warp_logits(logits,
align_matrix, warp_factor, align_src_shape)`` from the data sample's metainfo.

CelebAMask-HQ uses ``FaceAlignMatrix(mode='identity')`` and ``warp_factor=0``. FaRL resizes its
1024x1024 images to 512 (``cv2.INTER_LINEAR``) while the labels are natively 512; put
``dict(type='Resize', scale=(512, 512), keep_ratio=False)`` before ``FaceAlignMatrix`` so that the
image, the label and the evaluation all live in the 512 frame (the matrix is then the identity).
Without it the identity mode folds the 1024 -> 512 resize into the matrix (the same sampling
positions as ``cv2.resize``), and :class:`TanhWarp` warps a label of another size than the image
through the matching pixel-centre rescale; predictions then map back to the 1024 image frame.

Horizontal flip: FaRL trains without one. When wanted, reuse mmseg's
``dict(type='RandomFlip', prob=0.5, swap_seg_labels=[(2, 3), (4, 5)])`` (LaPa pairs: brows and
eyes) **after** ``TanhWarp``: it mirrors the warped image and label and swaps the left/right
classes, and sets ``flip=True``. ``align_matrix`` keeps describing the *unflipped* warped canvas
(the warp is symmetric about x = W/2, not about the mirror axis (W-1)/2, so for wf > 0 a flip is
not exactly a matrix update); a consumer of a flipped sample un-flips the prediction first, as
mmseg does with the ``flip`` metainfo. ``TanhWarp`` refuses samples flipped before it, whose
landmarks-based matrix would no longer match the image.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from faceanalysis.geometry import (LAPA_ALIGN_INDICES, face_align_matrix, random_affine_matrix,
                                   resize_matrix, transform_points, warp_image)
from faceanalysis.registry import TRANSFORMS

__all__ = ['FaceAlignMatrix', 'RandomFaceAffine', 'TanhWarp', 'PARSING_META_KEYS']

#: ``PackSegInputs(meta_keys=...)`` for warped parsing samples: mmseg's defaults plus what maps a
#: prediction back to the image (``align_matrix``, ``warp_factor``, ``warped_shape``,
#: ``align_src_shape``).
PARSING_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                     'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'align_matrix',
                     'warp_factor', 'warped_shape', 'align_src_shape')


def _shape2(shape: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(shape, (int, np.integer)):
        return int(shape), int(shape)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f'expected (H, W), got {shape}')
    return shape


def _where(results: dict) -> str:
    path = results.get('img_path')
    return f' ({path})' if path else ''


def _get_matrix(results: dict, key: str, transform: str) -> np.ndarray:
    if key not in results:
        raise KeyError(f'{transform} needs results[{key!r}]{_where(results)}; put FaceAlignMatrix '
                       'earlier in the pipeline')
    matrix = np.asarray(results[key], dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f'results[{key!r}] must be 3x3, got {matrix.shape}{_where(results)}')
    return matrix


@TRANSFORMS.register_module()
class FaceAlignMatrix(BaseTransform):
    """Compute the matrix original image -> aligned canvas (farl_protocol.md §3.2).

    * ``mode='landmarks'`` (LaPa): the least-squares similarity taking
      ``results[landmarks_key][indices]`` (5 points: eyes, nose tip, mouth corners) to FaRL's
      template on the ``target_shape`` canvas scaled by ``face_scale``. ``indices=None`` uses
      the landmarks as given (they must then be 5 points).
    * ``mode='identity'`` (CelebAMask-HQ): the pixel-centre resize of the whole image onto the
      canvas; the identity when the image already has ``target_shape``.

    Required keys: ``img`` (shape of the source frame); ``landmarks`` in landmarks mode
    (``(N, 2)`` x, y pixels). Added keys: ``align_matrix`` (3x3 float64).
    """

    def __init__(self, mode: str = 'landmarks',
                 indices: Optional[Sequence[int]] = LAPA_ALIGN_INDICES,
                 target_shape: Union[int, Sequence[int]] = (512, 512), face_scale: float = 1.0,
                 landmarks_key: str = 'landmarks', matrix_key: str = 'align_matrix') -> None:
        if mode not in ('landmarks', 'identity'):
            raise ValueError("FaceAlignMatrix mode must be 'landmarks' or 'identity', "
                             f'got {mode!r}')
        self.mode = mode
        self.indices = None if indices is None else tuple(int(i) for i in indices)
        self.target_shape = _shape2(target_shape)
        self.face_scale = float(face_scale)
        self.landmarks_key = landmarks_key
        self.matrix_key = matrix_key

    def transform(self, results: Dict) -> Dict:
        if self.mode == 'identity':
            src_shape = results['img'].shape[:2] if 'img' in results else results['img_shape']
            results[self.matrix_key] = resize_matrix(src_shape, self.target_shape)
            return results
        if self.landmarks_key not in results:
            raise KeyError(f'FaceAlignMatrix(mode="landmarks") needs results['
                           f'{self.landmarks_key!r}]{_where(results)}')
        points = np.asarray(results[self.landmarks_key], dtype=np.float64).reshape(-1, 2)
        if self.indices is not None:
            if max(self.indices) >= len(points):
                raise ValueError(f'FaceAlignMatrix indices {self.indices} need at least '
                                 f'{max(self.indices) + 1} landmarks, got {len(points)}'
                                 f'{_where(results)}')
            points = points[list(self.indices)]
        if len(points) != 5:
            raise ValueError(f'FaceAlignMatrix needs 5 alignment points, got {len(points)}'
                             f'{_where(results)}')
        results[self.matrix_key] = face_align_matrix(points, self.target_shape, self.face_scale)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(mode={self.mode!r}, indices={self.indices}, '
                f'target_shape={self.target_shape}, face_scale={self.face_scale})')


@TRANSFORMS.register_module()
class RandomFaceAffine(BaseTransform):
    """FaRL's random similarity about the canvas centre, composed as ``M_rand @ matrix``.

    Shift ``D(0, shift) * (W, H)`` px, rotation ``D(0, rotation)`` rad, scale
    ``D(scale_mu, scale)``, with ``D`` normal or uniform(mu +- sigma) per
    :func:`faceanalysis.geometry.sample_affine_params`. Defaults are the parsing recipe
    (farl_protocol.md §5.2): uniform shift +-0.01, rotation N(0, 0.314), scale N(1, 0.1). The
    alignment recipe (§5.3) is ``shift=0.05, rotation=0.174, scale=0.1, scale_mu=0.8 (1.0 AFLW),
    distribution='uniform'``. Draws come from the global ``np.random`` state, which MMEngine
    seeds per worker.

    Required / modified keys: ``align_matrix`` (``matrix_key``).
    """

    def __init__(self, target_shape: Union[int, Sequence[int]] = (512, 512), shift: float = 0.01,
                 rotation: float = 0.314, scale: float = 0.1, scale_mu: float = 1.0,
                 distribution: Union[str, Dict[str, str]] = 'normal',
                 shift_distribution: str = 'uniform', matrix_key: str = 'align_matrix') -> None:
        self.target_shape = _shape2(target_shape)
        self.shift, self.rotation, self.scale = float(shift), float(rotation), float(scale)
        self.scale_mu = float(scale_mu)
        self.distribution = distribution
        self.shift_distribution = shift_distribution
        self.matrix_key = matrix_key
        random_affine_matrix(np.random.default_rng(0), self.target_shape, self.shift,
                             self.rotation, self.scale, self.scale_mu, distribution,
                             shift_distribution)  # validate the arguments now

    def transform(self, results: Dict) -> Dict:
        matrix = _get_matrix(results, self.matrix_key, 'RandomFaceAffine')
        rand = random_affine_matrix(None, self.target_shape, self.shift, self.rotation,
                                    self.scale, self.scale_mu, self.distribution,
                                    self.shift_distribution)
        results[self.matrix_key] = rand @ matrix
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(shift={self.shift}, rotation={self.rotation}, '
                f'scale={self.scale}, scale_mu={self.scale_mu}, '
                f'distribution={self.distribution!r}, '
                f'shift_distribution={self.shift_distribution!r})')


@TRANSFORMS.register_module()
class TanhWarp(BaseTransform):
    """Warp the image (and, for training, the label) onto FaRL's RoI tanh-warped canvas.

    The image is warped bilinearly **in float32** (FaRL warps ``img / 255``; the scale is kept
    here, so the output is float32 in the input's 0-255 range and ``SegDataPreProcessor``'s
    mean/std apply unchanged); labels in ``seg_fields`` are warped nearest with border value 0
    (background, as FaRL trains the area outside the image). A label whose size differs from the
    image's is mapped through the pixel-centre rescale label -> image first.

    Args:
        warped_shape: canvas ``(H, W)`` (512x512 in FaRL; the backbone resizes to 448 itself).
        warp_factor: 0.8 for LaPa, 0 for CelebAMask-HQ and the landmark tasks.
        warp_label: warp ``seg_fields`` (training). False keeps the original-resolution ground
            truth for the metric (testing).
        matrix_key: results key of the original -> aligned matrix.
        keep_dtype: cast the warped image back to the input dtype (rounding for uint8) instead
            of returning float32.

    Landmarks (face alignment): when the sample holds ``keypoints`` (mmpose's ``(N, K, 2)``, or
    ``(N, K, 3)`` with a third column kept as is), their ``(x, y)`` are mapped with the same
    matrix and warp (:func:`faceanalysis.geometry.transform_points`) into
    ``transformed_keypoints`` (float32, same shape), as mmpose's ``TopdownAffine`` does;
    ``keypoints`` stay in original-image pixels. ``PackPoseInputs(pack_transformed=True)`` packs
    them as ``gt_instances.transformed_keypoints`` for the loss.

    Required keys: ``img``, ``align_matrix``; ``gt_seg_map`` / ``seg_fields`` if ``warp_label``.
    Modified keys: ``img``, ``img_shape``, ``gt_seg_map`` (if ``warp_label``).
    Added keys: ``warped_shape`` (H, W), ``warp_factor`` (float), ``align_src_shape`` (H, W of the
    image the matrix applies to; map predictions back onto this grid), ``align_matrix`` (stored
    as a 3x3 float64 array), ``transformed_keypoints`` (if ``keypoints``).
    """

    def __init__(self, warped_shape: Union[int, Sequence[int]] = (512, 512),
                 warp_factor: float = 0.8, warp_label: bool = True,
                 matrix_key: str = 'align_matrix', keep_dtype: bool = False) -> None:
        self.warped_shape = _shape2(warped_shape)
        self.warp_factor = float(warp_factor)
        if not 0.0 <= self.warp_factor <= 1.0:
            raise ValueError(f'warp_factor must be in [0, 1], got {warp_factor}')
        self.warp_label = bool(warp_label)
        self.matrix_key = matrix_key
        self.keep_dtype = bool(keep_dtype)

    def transform(self, results: Dict) -> Dict:
        if results.get('flip', False):
            raise ValueError('TanhWarp got a sample that is already flipped'
                             f'{_where(results)}: its alignment matrix no longer matches the '
                             'image; put RandomFlip after TanhWarp')
        matrix = _get_matrix(results, self.matrix_key, 'TanhWarp')
        img = np.asarray(results['img'])
        src_shape = tuple(img.shape[:2])
        warped = warp_image(img.astype(np.float32, copy=False), matrix, self.warped_shape,
                            self.warp_factor, 'bilinear')
        if self.keep_dtype and img.dtype != np.float32:
            if np.issubdtype(img.dtype, np.integer):
                info = np.iinfo(img.dtype)
                warped = np.clip(np.rint(warped), info.min, info.max)
            warped = warped.astype(img.dtype)
        results['img'] = warped
        results['img_shape'] = self.warped_shape

        if self.warp_label:
            for key in results.get('seg_fields', []):
                label = results.get(key)
                if label is None:
                    continue
                label_matrix = matrix
                if tuple(label.shape[:2]) != src_shape:
                    label_matrix = matrix @ resize_matrix(label.shape[:2], src_shape)
                results[key] = warp_image(label, label_matrix, self.warped_shape,
                                          self.warp_factor, 'nearest')

        keypoints = results.get('keypoints')
        if keypoints is not None:
            results['transformed_keypoints'] = self._transform_keypoints(keypoints, matrix)

        results[self.matrix_key] = matrix
        results['warp_factor'] = self.warp_factor
        results['warped_shape'] = self.warped_shape
        results['align_src_shape'] = src_shape
        return results

    def _transform_keypoints(self, keypoints, matrix: np.ndarray) -> np.ndarray:
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.ndim < 2 or keypoints.shape[-1] < 2:
            raise ValueError(f'keypoints must be (..., K, 2), got shape {keypoints.shape}')
        out = keypoints.copy()
        out[..., :2] = transform_points(keypoints[..., :2], matrix, self.warped_shape,
                                        self.warp_factor)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(warped_shape={self.warped_shape}, '
                f'warp_factor={self.warp_factor}, warp_label={self.warp_label})')
