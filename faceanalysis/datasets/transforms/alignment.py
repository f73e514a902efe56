"""FaRL's face-alignment transforms for mmpose pipelines (farl_protocol.md §3.2, §5.3).

They complete :mod:`.warping` (``RandomFaceAffine``, ``TanhWarp``) and :mod:`.photometric`
(``RandomGray``, ``RandomGamma``, ``RandomBoxBlur``). Pipelines run in mmpose's scope on samples
of :mod:`faceanalysis.datasets.alignment` (``face_box`` xyxy and ``keypoints`` ``(1, K, 2)`` in
original pixels)::

    train_pipeline = [
        dict(type='LoadImage'),
        dict(type='FaceBoxCropMatrix', face_scale=1.0),     # NB 1.0: the random scale holds mu
        dict(type='RandomFaceAffine', shift=0.05, rotation=0.174, scale=0.1,
             scale_mu=0.8,                                  # 1.0 for AFLW-19
             distribution='uniform'),
        dict(type='TanhWarp', warped_shape=(512, 512), warp_factor=0.0),
        dict(type='RandomOcclusion'),                       # always, as FaRL
        dict(type='NoiseFusion', prob=0.5),
        dict(type='RandomGray', prob=0.1),
        dict(type='RandomGamma'),
        dict(type='RandomBoxBlur', max_ratio=0.01),
        dict(type='PackPoseInputs', meta_keys=ALIGNMENT_WARP_META_KEYS,
             pack_transformed=True),                        # the loss reads the warped points
    ]
    test_pipeline = [
        dict(type='LoadImage'),
        dict(type='FaceBoxCropMatrix', face_scale=0.8),     # 1.0 for AFLW-19
        dict(type='TanhWarp', warped_shape=(512, 512), warp_factor=0.0),
        dict(type='PackPoseInputs', meta_keys=ALIGNMENT_WARP_META_KEYS),
    ]

**Where the face scale goes.** FaRL's training matrix is ``UpdateRandomTransformMatrix`` applied
to the bare box crop with ``scale ~ U(scale_mu - 0.1, scale_mu + 0.1)``: the random scale *is*
the face scale. At test time ``UpdateTransformMatrix(scale_mu)`` applies ``scale_mu`` alone. So
training uses ``FaceBoxCropMatrix(face_scale=1.0)`` + ``RandomFaceAffine(scale_mu=0.8)`` and
testing ``FaceBoxCropMatrix(face_scale=0.8)``; ``face_scale=0.8`` followed by ``scale_mu=0.8``
would shrink faces to 0.64. (Scales about the canvas centre commute with the random rotation
about the same centre, so ``face_scale=0.8`` + ``RandomFaceAffine(scale_mu=1.0, scale=0.125)``
would be the same law; we keep FaRL's numbers.)

**Value ranges.** As in :mod:`.photometric`: images stay on the 0-255 scale
(``PoseDataPreprocessor`` normalises with 0-255 mean/std). :class:`NoiseFusion` accepts uint8 or
float and returns float32 in [0, 255] (FaRL's [0, 1] numbers times 255); :class:`RandomOcclusion`
only zeroes a box and keeps the dtype (float32 after ``TanhWarp``). Draws come from the global
``np.random`` state, seeded per dataloader worker by MMEngine.

**Horizontal flip** (not in FaRL, optional): :class:`RandomFaceFlip` *after* ``TanhWarp`` mirrors
the canvas and the warped landmarks (swapping left/right points with the dataset's
``flip_indices``) and folds the mirror into ``align_matrix``, so predictions still map back to
the original image exactly. mmpose's ``RandomFlip`` does not fit this pipeline: it flips
``keypoints`` in the image frame, not the warped ones.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform

from faceanalysis.geometry import crop_resize_matrix, scale_about_center
from faceanalysis.registry import TRANSFORMS
from ..alignment.base import ALIGNMENT_META_KEYS
from .warping import _get_matrix, _shape2, _where

__all__ = ['FaceBoxCropMatrix', 'RandomOcclusion', 'NoiseFusion', 'RandomFaceFlip',
           'ALIGNMENT_WARP_META_KEYS', 'WARP_META_KEYS']

#: What maps a prediction on the warped canvas back to the original image.
WARP_META_KEYS = ('align_matrix', 'warp_factor', 'warped_shape', 'align_src_shape')

#: ``PackPoseInputs(meta_keys=...)`` for warped alignment samples: the dataset's
#: :data:`~faceanalysis.datasets.alignment.ALIGNMENT_META_KEYS` (mmpose's defaults, ``face_box``,
#: ``gt_keypoints``, ``subset`` ...) plus :data:`WARP_META_KEYS`, which ``FaceHeatmapHead`` reads
#: to decode landmarks into original-image pixels.
ALIGNMENT_WARP_META_KEYS = tuple(ALIGNMENT_META_KEYS) + WARP_META_KEYS


@TRANSFORMS.register_module()
class FaceBoxCropMatrix(BaseTransform):
    """FaRL's landmark-task matrix: crop the GT face box to the canvas, scale about its centre.

    ``align_matrix = scale_about_center(face_scale) @ crop_resize_matrix(box)``
    (blueprint ``UpdateCropAndResizeMatrix(align_corners=False)`` then
    ``UpdateTransformMatrix(scale_mu)``, farl_protocol.md §3.2): the box's edges go to the canvas
    edges (``x' = (x - x1) / (x2 - x1) * W - 0.5``; anisotropic for a non-square box, e.g.
    AFLW-19's), then the canvas is scaled by ``face_scale`` about its centre ``((W-1)/2, (H-1)/2)``
    so that the box fills ``face_scale`` of it. Test time: 0.8 for 300W / WFLW (the crop is 1.25x
    HRNet's box), 1.0 for AFLW-19. Training: 1.0, with ``RandomFaceAffine(scale_mu=...)`` drawing
    the face scale (see the module docstring).

    Args:
        target_shape: canvas ``(H, W)`` (FaRL 512x512); the ``warped_shape`` of ``TanhWarp``.
        face_scale: scale about the canvas centre applied after the crop.
        box_key: results key of the box, ``(4,)`` or ``(1, 4)`` ``x1, y1, x2, y2`` in original
            pixels (our readers' ``face_box``, which mmpose transforms never touch).
        fallback_box_key: used when ``box_key`` is absent (``'bbox'``: what mmpose's
            ``inference_topdown`` provides); ``None`` makes a missing ``box_key`` an error.
        matrix_key: where the matrix is written.

    Required keys: ``face_box`` (or ``bbox``). Added keys: ``align_matrix`` (3x3 float64).
    """

    def __init__(self, target_shape: Union[int, Sequence[int]] = (512, 512),
                 face_scale: float = 0.8, box_key: str = 'face_box',
                 fallback_box_key: Optional[str] = 'bbox',
                 matrix_key: str = 'align_matrix') -> None:
        self.target_shape = _shape2(target_shape)
        self.face_scale = float(face_scale)
        if not self.face_scale > 0:
            raise ValueError(f'face_scale must be positive, got {face_scale}')
        self.box_key = box_key
        self.fallback_box_key = fallback_box_key
        self.matrix_key = matrix_key

    def _box(self, results: Dict) -> np.ndarray:
        key = self.box_key
        if results.get(key) is None and self.fallback_box_key is not None:
            key = self.fallback_box_key
        if results.get(key) is None:
            keys = [k for k in (self.box_key, self.fallback_box_key) if k]
            raise KeyError(f'FaceBoxCropMatrix needs a face box in results{keys}'
                           f'{_where(results)}')
        box = np.asarray(results[key], dtype=np.float64)
        if box.size != 4:
            raise ValueError(f'FaceBoxCropMatrix handles one face per sample: results[{key!r}] '
                             f'must hold 4 values (x1, y1, x2, y2), got shape {box.shape}'
                             f'{_where(results)}')
        box = box.reshape(4)
        if not np.all(np.isfinite(box)):
            raise ValueError(f'results[{key!r}] = {box.tolist()} is not finite{_where(results)}')
        return box

    def transform(self, results: Dict) -> Dict:
        x1, y1, x2, y2 = self._box(results)
        try:
            crop = crop_resize_matrix((y1, x1, y2, x2), self.target_shape)
        except ValueError as err:
            raise ValueError(f'{err}{_where(results)}') from None
        results[self.matrix_key] = scale_about_center(self.face_scale, self.target_shape) @ crop
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(target_shape={self.target_shape}, '
                f'face_scale={self.face_scale}, box_key={self.box_key!r})')


@TRANSFORMS.register_module()
class RandomOcclusion(BaseTransform):
    """Black out one random rectangle of the (warped) image, always (blueprint
    ``RandomOcclusion``, farl_protocol.md §5.3).

    ``rh ~ U(h_min, h_max)``, ``rw = rh + U(-w_delta, w_delta)``; the centre ``(cx, cy)`` is
    ``int(U(0, 1) * (S - 1))`` per axis; half-sizes ``int(H / 2 * rh) // 2`` and
    ``int(W / 2 * rw) // 2``; the rectangle ``[cy - hh, cy + hh] x [cx - hw, cx + hw]`` (inclusive,
    clipped to the image) is set to 0. So an unclipped box is ``2 * (int(H / 2 * rh) // 2) + 1``
    rows by the like columns: 25 to 205 rows on a 512 canvas, at least one pixel. (Blueprint draws
    the x centre over ``H - 1`` and the y centre over ``W - 1``; identical on FaRL's square
    canvas, and here each axis uses its own size.)

    Args:
        h_min, h_max: range of ``rh`` (FaRL 0.2, 0.8).
        w_delta: half-range of ``rw - rh`` (FaRL 0.2).
        prob: probability of occluding (FaRL: 1, always).
        value: fill value.

    Modified keys: ``img`` (same dtype; a copy). Added keys: ``occlusion_box`` (``x0, y0, x1, y1``
    inclusive, or None when not applied), for inspection.
    """

    def __init__(self, h_min: float = 0.2, h_max: float = 0.8, w_delta: float = 0.2,
                 prob: float = 1.0, value: float = 0) -> None:
        if not 0 <= h_min <= h_max:
            raise ValueError(f'need 0 <= h_min <= h_max, got {h_min}, {h_max}')
        self.h_min, self.h_max = float(h_min), float(h_max)
        self.w_delta = float(w_delta)
        self.prob = float(prob)
        self.value = value

    def transform(self, results: Dict) -> Dict:
        if self.prob < 1.0 and np.random.uniform() >= self.prob:
            results['occlusion_box'] = None
            return results
        img = np.array(results['img'])  # a copy: the source array may be shared
        h, w = img.shape[:2]
        rh = np.random.uniform(self.h_min, self.h_max)
        rw = rh + np.random.uniform(-self.w_delta, self.w_delta)
        cx = int(np.random.uniform() * (w - 1))
        cy = int(np.random.uniform() * (h - 1))
        half_h = int(h / 2 * rh) // 2
        half_w = max(int(w / 2 * rw), 0) // 2
        x0, y0 = max(0, cx - half_w), max(0, cy - half_h)
        x1, y1 = min(w - 1, cx + half_w), min(h - 1, cy + half_h)
        img[y0:y1 + 1, x0:x1 + 1, ...] = self.value
        results['img'] = img
        results['occlusion_box'] = (x0, y0, x1, y1)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(h_min={self.h_min}, h_max={self.h_max}, '
                f'w_delta={self.w_delta}, prob={self.prob})')


@TRANSFORMS.register_module()
class NoiseFusion(BaseTransform):
    """With probability ``prob``, blend uniform noise into the image (blueprint ``NoiseFusion``
    inside ``Maybe(prob=0.5)``, farl_protocol.md §5.3).

    ``img = (1 - a) * img + a * noise`` with ``a ~ U(0, max_alpha)`` per image and
    ``noise ~ U(0, max_value)`` per pixel and channel. FaRL works on [0, 1]; here ``max_value``
    255 keeps mmcv's scale, so the result is FaRL's times 255. Output: float32 (uint8 input is
    converted; not clipped or rounded).
    """

    def __init__(self, prob: float = 0.5, max_alpha: float = 0.5,
                 max_value: float = 255.0) -> None:
        self.prob = float(prob)
        self.max_alpha = float(max_alpha)
        self.max_value = float(max_value)

    def transform(self, results: Dict) -> Dict:
        img = np.asarray(results['img']).astype(np.float32, copy=False)
        if np.random.uniform() < self.prob:
            alpha = np.random.uniform(0.0, self.max_alpha)
            noise = np.random.uniform(0.0, self.max_value, size=img.shape)
            img = ((1.0 - alpha) * img + alpha * noise).astype(np.float32)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, max_alpha={self.max_alpha}, '
                f'max_value={self.max_value})')


@TRANSFORMS.register_module()
class RandomFaceFlip(BaseTransform):
    """Horizontal flip of the warped canvas and its landmarks (optional; FaRL trains without).

    Put it after ``TanhWarp`` (warp factor 0, the alignment setting). With probability ``prob``:

    * ``img`` is mirrored: warped pixel ``x`` <- ``W - 1 - x``;
    * ``transformed_keypoints`` get ``x <- W - 1 - x`` and are re-ordered with ``flip_indices``
      (the dataset's left/right pairs: point ``k`` of the mirrored face is point
      ``flip_indices[k]`` of the original one);
    * ``align_matrix <- F @ align_matrix`` with ``F`` the mirror ``x -> W - 1 - x``, so the matrix
      still maps the original image onto this canvas and decoding needs no special case. The
      point order is the semantic one throughout, so predictions map back to the right points.

    ``keypoints`` (original pixels, unflipped) and ``keypoints_visible`` are left alone.

    Required keys: ``img``, ``align_matrix``, ``warp_factor`` (0), ``transformed_keypoints`` (if
    any), ``flip_indices`` (if keypoints). Modified keys: those. Added keys: ``flip``,
    ``flip_direction``.
    """

    def __init__(self, prob: float = 0.5, matrix_key: str = 'align_matrix') -> None:
        self.prob = float(prob)
        self.matrix_key = matrix_key

    def transform(self, results: Dict) -> Dict:
        if not np.random.uniform() < self.prob:
            results.setdefault('flip', False)
            results.setdefault('flip_direction', None)
            return results
        if results.get('flip', False):
            raise ValueError(f'RandomFaceFlip got a sample that is already flipped'
                             f'{_where(results)}')
        if 'warped_shape' not in results:
            raise KeyError(f'RandomFaceFlip needs a warped sample{_where(results)}: put it after '
                           'TanhWarp')
        if float(results.get('warp_factor', 0.0)) != 0.0:
            raise ValueError('RandomFaceFlip needs warp_factor 0: the tanh warp is symmetric about '
                             'x = W / 2, not about the mirror axis (W - 1) / 2, so a flip of a '
                             'warped canvas is no matrix update')
        matrix = _get_matrix(results, self.matrix_key, 'RandomFaceFlip')
        width = int(_shape2(results['warped_shape'])[1])
        mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        img = np.asarray(results['img'])
        results['img'] = np.ascontiguousarray(img[:, ::-1])
        keypoints = results.get('transformed_keypoints')
        if keypoints is not None:
            flip_indices = results.get('flip_indices')
            keypoints = np.array(keypoints, dtype=np.float32)
            if flip_indices is None or len(flip_indices) != keypoints.shape[-2]:
                raise ValueError(f'RandomFaceFlip needs flip_indices for the '
                                 f'{keypoints.shape[-2]} landmarks{_where(results)}')
            keypoints = keypoints[..., list(flip_indices), :]
            keypoints[..., 0] = width - 1.0 - keypoints[..., 0]
            results['transformed_keypoints'] = keypoints
        results[self.matrix_key] = mirror @ matrix
        results['flip'] = True
        results['flip_direction'] = 'horizontal'
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
