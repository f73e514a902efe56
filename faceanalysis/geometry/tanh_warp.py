"""RoI tanh-warping (FaRL / blueprint), for points, images (cv2) and logits (torch).

Spaces and maps (shared/docs/farl_protocol.md §3.3, §3.4; conventions of
:mod:`faceanalysis.geometry.alignment`: pixel centres on integers, points ``(x, y)``, shapes
``(H, W)``)::

    original image --M (3x3)--> aligned canvas --tanh forward--> warped canvas (network input)
    original image <--M^-1----- aligned canvas <--tanh inverse--- warped canvas

The aligned and the warped canvas have the same size ``warped_shape`` (512x512 in FaRL). Per
axis, with ``S`` = W for x and H for y, normalise ``n = p / S * 2 - 1`` (note: ``S``, not
``S - 1``, so the warp is symmetric about pixel ``S / 2`` = 256, half a pixel right of the grid
centre 255.5; this is FaRL's choice and is kept). With ``a = 1 - wf`` (``wf`` the warp factor):

* forward (aligned -> warped): ``n_w = n`` if ``|n| <= a``, else
  ``sign(n) * (tanh((|n| - a) / wf) * wf + a)``;
* inverse (warped -> aligned): ``n = n_w`` if ``|n_w| <= a``, else
  ``sign(n_w) * (arctanh(min((|n_w| - a) / wf, 0.999)) * wf + a)``.

``wf = 0`` is the identity (a pure crop with ``M``). The 0.999 clip bounds the aligned region the
warped canvas shows: for 512 and wf 0.8 it is [-573.5, 1085.5] px, and warped pixel 0 -> -573.5,
100 -> 89.1, 204.8 -> 204.8, 400 -> 407.3, 511 -> 922.9 aligned px. Consequently
``forward(inverse(w)) == w`` only where ``|n_w| <= a + 0.999 wf``, i.e. for warped coordinates
in ``[b, S - b]`` with ``b = 0.001 * wf * S / 2`` (0.2048 px for 512, wf 0.8); closer to 0 or
``S`` (or beyond) they come back clamped to ``b`` / ``S - b`` (pixel centre 0 moves by 0.2048 px,
no other pixel centre moves). ``inverse(forward(p)) == p`` for aligned points inside the region
above and is clamped to its edge outside.

Images are resampled with ``cv2.remap`` (border constant 0; bilinear for images and logits,
nearest for labels), building the sampling map on the *destination* grid: for :func:`warp_image`
every warped pixel centre goes through tanh inverse and ``M^-1``; for :func:`unwarp_image` and
:func:`inverse_warp_logits` every original pixel centre goes through ``M`` and tanh forward
(FaRL's ``GetInvertedTransformMap``, §3.4).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .alignment import _shape2, apply_matrix

__all__ = [
    'TANH_CLIP', 'tanh_warp_forward', 'tanh_warp_inverse', 'transform_points',
    'inverse_transform_points', 'warp_map', 'inverse_warp_map', 'warp_image', 'unwarp_image',
    'inverse_warp_grid', 'inverse_warp_logits'
]

ArrayLike = Union[np.ndarray, Sequence]

#: The arctanh argument clip of blueprint's ``_tanh_warp_transform``.
TANH_CLIP = 0.999

_INTERPOLATIONS = {'bilinear': cv2.INTER_LINEAR, 'nearest': cv2.INTER_NEAREST}


# ------------------------------------------------------------------------------------------------
# normalised maps, shared by numpy (float64) and torch
# ------------------------------------------------------------------------------------------------
class _NumpyOps:
    abs, sign, tanh, where = np.abs, np.sign, np.tanh, np.where
    atanh = np.arctanh

    @staticmethod
    def clamp_max(x, hi):
        return np.minimum(x, hi)


class _TorchOps:
    abs, sign, tanh, where = torch.abs, torch.sign, torch.tanh, torch.where
    atanh = torch.atanh

    @staticmethod
    def clamp_max(x, hi):
        return torch.clamp(x, max=hi)


def _ops(x):
    return _TorchOps if isinstance(x, torch.Tensor) else _NumpyOps


def _forward_normalized(n, wf):
    """Aligned -> warped in normalised units; ``wf`` a float or a broadcastable tensor."""
    ops = _ops(n)
    lin = 1.0 - wf
    safe_wf = ops.where(wf > 0, wf, 1.0) if ops is _TorchOps else (wf if wf > 0 else 1.0)
    excess = ops.abs(n) - lin
    warped = ops.sign(n) * (ops.tanh(excess / safe_wf) * wf + lin)
    return ops.where((excess > 0) & (wf > 0), warped, n)


def _inverse_normalized(n_w, wf, clip: float = TANH_CLIP):
    """Warped -> aligned in normalised units."""
    ops = _ops(n_w)
    lin = 1.0 - wf
    safe_wf = ops.where(wf > 0, wf, 1.0) if ops is _TorchOps else (wf if wf > 0 else 1.0)
    excess = ops.abs(n_w) - lin
    t = ops.clamp_max(excess / safe_wf, clip)
    aligned = ops.sign(n_w) * (ops.atanh(ops.where(excess > 0, t, 0.0 * t)) * wf + lin)
    return ops.where((excess > 0) & (wf > 0), aligned, n_w)


def _check_wf(warp_factor: float) -> float:
    wf = float(warp_factor)
    if not 0.0 <= wf <= 1.0:
        raise ValueError(f'warp_factor must be in [0, 1], got {warp_factor}')
    return wf


def _sizes(warped_shape) -> np.ndarray:
    h, w = _shape2(warped_shape)
    return np.array([float(w), float(h)])


def tanh_warp_forward(points_aligned: ArrayLike, warped_shape: Union[int, Sequence[int]] = 512,
                      warp_factor: float = 0.8) -> np.ndarray:
    """Aligned-canvas points -> warped-canvas points (``(..., 2)``, float64)."""
    wf = _check_wf(warp_factor)
    size = _sizes(warped_shape)
    n = np.asarray(points_aligned, dtype=np.float64) / size * 2.0 - 1.0
    return (_forward_normalized(n, wf) + 1.0) / 2.0 * size


def tanh_warp_inverse(points_warped: ArrayLike, warped_shape: Union[int, Sequence[int]] = 512,
                      warp_factor: float = 0.8, clip: float = TANH_CLIP) -> np.ndarray:
    """Warped-canvas points -> aligned-canvas points (arctanh with FaRL's 0.999 clip)."""
    wf = _check_wf(warp_factor)
    size = _sizes(warped_shape)
    n_w = np.asarray(points_warped, dtype=np.float64) / size * 2.0 - 1.0
    return (_inverse_normalized(n_w, wf, clip) + 1.0) / 2.0 * size


def transform_points(points: ArrayLike, matrix: ArrayLike,
                     warped_shape: Union[int, Sequence[int]] = 512,
                     warp_factor: float = 0.0) -> np.ndarray:
    """Original-image points -> warped canvas: ``M`` then tanh forward (blueprint
    ``TransformPoints2D``)."""
    return tanh_warp_forward(apply_matrix(points, matrix), warped_shape, warp_factor)


def inverse_transform_points(points: ArrayLike, matrix: ArrayLike,
                             warped_shape: Union[int, Sequence[int]] = 512,
                             warp_factor: float = 0.0) -> np.ndarray:
    """Warped-canvas points -> original image: tanh inverse then ``M^-1`` (blueprint
    ``TransformPoints2DInverted``; how predicted landmarks return to the image)."""
    aligned = tanh_warp_inverse(points, warped_shape, warp_factor)
    return apply_matrix(aligned, np.linalg.inv(np.asarray(matrix, dtype=np.float64)))


def _pixel_grid(shape) -> np.ndarray:
    h, w = _shape2(shape)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                         indexing='ij')
    return np.stack([xs, ys], axis=-1)


def warp_map(matrix: ArrayLike, warped_shape: Union[int, Sequence[int]] = 512,
             warp_factor: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """``(map_x, map_y)`` float32 of ``warped_shape``: the original-image position sampled by
    each warped pixel centre (blueprint ``GetTransformMap``)."""
    src = inverse_transform_points(_pixel_grid(warped_shape), matrix, warped_shape, warp_factor)
    return src[..., 0].astype(np.float32), src[..., 1].astype(np.float32)


def inverse_warp_map(matrix: ArrayLike, ori_shape: Union[int, Sequence[int]],
                     warped_shape: Union[int, Sequence[int]] = 512,
                     warp_factor: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """``(map_x, map_y)`` float32 of ``ori_shape``: the warped-canvas position of each original
    pixel centre (blueprint ``GetInvertedTransformMap``)."""
    dst = transform_points(_pixel_grid(ori_shape), matrix, warped_shape, warp_factor)
    return dst[..., 0].astype(np.float32), dst[..., 1].astype(np.float32)


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interpolation,
           border_value: float) -> np.ndarray:
    flag = _INTERPOLATIONS.get(interpolation, interpolation)
    if flag not in (cv2.INTER_LINEAR, cv2.INTER_NEAREST):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    image = np.asarray(image)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    if image.ndim == 3 and image.shape[2] > 4:
        # OpenCV (5.0) interpolates float images exactly for up to 4 channels but quantises the
        # sampling positions to 1/32 px beyond that: remap 4 channels at a time
        return np.concatenate([
            _remap(image[..., c:c + 4], map_x, map_y, flag, border_value)
            for c in range(0, image.shape[2], 4)
        ], axis=2)
    squeeze = image.ndim == 3 and image.shape[2] == 1  # cv2 drops a trailing singleton channel
    out = cv2.remap(np.ascontiguousarray(image), map_x, map_y, flag,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
    return out[..., None] if squeeze and out.ndim == 2 else out


def warp_image(image: np.ndarray, matrix: ArrayLike,
               warped_shape: Union[int, Sequence[int]] = 512, warp_factor: float = 0.0,
               interpolation: Union[str, int] = 'bilinear', border_value: float = 0) -> np.ndarray:
    """Resample an original image onto the warped canvas (``cv2.remap``, border constant 0).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array of a dtype ``cv2.remap`` accepts (uint8,
            float32, ...); the dtype is kept (cast to float32 first to warp in float as FaRL).
        matrix: 3x3, original -> aligned canvas.
        warped_shape: output ``(H, W)``.
        warp_factor: tanh warp factor in [0, 1].
        interpolation: ``'bilinear'`` for images, ``'nearest'`` for label maps.
    """
    map_x, map_y = warp_map(matrix, warped_shape, warp_factor)
    return _remap(image, map_x, map_y, interpolation, border_value)


def unwarp_image(warped: np.ndarray, matrix: ArrayLike, ori_shape: Union[int, Sequence[int]],
                 warp_factor: float = 0.0, interpolation: Union[str, int] = 'bilinear',
                 border_value: float = 0) -> np.ndarray:
    """Resample a warped-canvas array (image, ``(h, w, C)`` logits, label) back onto the original
    image grid of ``ori_shape``; the canvas size is ``warped.shape[:2]``. The numpy counterpart of
    :func:`inverse_warp_logits` (FaRL's test-time ``cv2.remap`` of the logits, §3.4)."""
    map_x, map_y = inverse_warp_map(matrix, ori_shape, warped.shape[:2], warp_factor)
    return _remap(warped, map_x, map_y, interpolation, border_value)


# ------------------------------------------------------------------------------------------------
# torch: logits back to the original image
# ------------------------------------------------------------------------------------------------
def _batched_matrix(matrix, batch: int, device, dtype) -> torch.Tensor:
    mat = torch.as_tensor(np.asarray(matrix, dtype=np.float64) if not isinstance(
        matrix, torch.Tensor) else matrix).to(device=device, dtype=dtype)
    if mat.shape[-2:] != (3, 3):
        raise ValueError(f'matrix must be (3, 3) or (B, 3, 3), got {tuple(mat.shape)}')
    if mat.dim() == 2:
        mat = mat.expand(batch, 3, 3)
    if mat.shape[0] != batch:
        raise ValueError(f'{mat.shape[0]} matrices for a batch of {batch}')
    return mat


def _batched_wf(warp_factor, batch: int, device, dtype) -> torch.Tensor:
    wf = torch.as_tensor(warp_factor if isinstance(warp_factor, torch.Tensor) else
                         np.asarray(warp_factor, dtype=np.float64)).to(device=device, dtype=dtype)
    wf = wf.reshape(-1)
    if wf.numel() == 1:
        wf = wf.expand(batch)
    if wf.numel() != batch:
        raise ValueError(f'{wf.numel()} warp factors for a batch of {batch}')
    if bool(((wf < 0) | (wf > 1)).any()):
        raise ValueError(f'warp_factor must be in [0, 1], got {wf.tolist()}')
    return wf.reshape(batch, 1, 1)


def inverse_warp_grid(matrix, warp_factor, ori_shape: Union[int, Sequence[int]],
                      warped_shape: Union[int, Sequence[int]] = 512, batch: Optional[int] = None,
                      device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Warped-canvas pixel coordinates of every original pixel centre, ``(B, H, W, 2)`` (x, y).

    Args:
        matrix: ``(3, 3)`` or ``(B, 3, 3)`` array / tensor, original -> aligned canvas.
        warp_factor: float or ``B`` values.
        ori_shape: original image ``(H, W)`` (one for the whole batch).
        warped_shape: canvas ``(h, w)`` the pixel coordinates refer to.
        batch: batch size (default: from ``matrix``, else 1).
        dtype: computation dtype (float64 by default: coordinates of several hundred pixels
            through tanh; use float32 on devices without float64).
    """
    if batch is None:
        ndim = matrix.dim() if isinstance(matrix, torch.Tensor) else np.ndim(matrix)
        batch = len(matrix) if ndim == 3 else 1
    mat = _batched_matrix(matrix, batch, device, dtype)
    wf = _batched_wf(warp_factor, batch, mat.device, dtype)
    h, w = _shape2(ori_shape)
    wh, ww = _shape2(warped_shape)
    ys, xs = torch.meshgrid(torch.arange(h, device=mat.device, dtype=dtype),
                            torch.arange(w, device=mat.device, dtype=dtype), indexing='ij')
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)
    aligned = pts @ mat.transpose(1, 2)  # (B, HW, 3)
    aligned = aligned[..., :2] / aligned[..., 2:]
    size = torch.tensor([float(ww), float(wh)], device=mat.device, dtype=dtype)
    n = aligned / size * 2.0 - 1.0
    warped = (_forward_normalized(n, wf) + 1.0) / 2.0 * size
    return warped.reshape(batch, h, w, 2)


def inverse_warp_logits(logits: torch.Tensor, matrix, warp_factor,
                        ori_shape: Union[int, Sequence[int]],
                        warped_shape: Optional[Union[int, Sequence[int]]] = None,
                        grid_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Map logits predicted on the warped canvas back to the original image (FaRL §3.4).

    For every original pixel centre its warped coordinates (``M`` then tanh forward) are sampled
    bilinearly with zero padding (``F.grid_sample(align_corners=False, padding_mode='zeros')``),
    which equals FaRL's ``cv2.remap(logits, map, INTER_LINEAR, BORDER_CONSTANT, 0)``: with
    ``align_corners=False`` the normalised grid value of pixel coordinate ``x`` is
    ``(x + 0.5) / w * 2 - 1``, and neighbours outside the canvas count as 0 in both. Take the
    argmax afterwards, never before (raw logits are interpolated, as in FaRL).

    Logits at a lower resolution than the canvas (e.g. a 112x112 head output for a 512 canvas)
    are first upsampled to ``warped_shape`` with ``F.interpolate(bilinear, align_corners=False)``,
    exactly as FaRL does before its remap. Folding the scale into the grid instead (sampling the
    112 map at ``(x + 0.5) * 112 / 512 - 0.5``) is *not* equivalent: bilinear-of-bilinear differs
    where a canvas pixel straddles a coarse pixel line, and near the canvas edge the upsampling
    replicates the edge value while zero padding on the coarse map fades towards 0 over a whole
    coarse pixel (4.6 canvas px), so we upsample.

    Args:
        logits: ``(C, h, w)`` or ``(B, C, h, w)`` float tensor, any device.
        matrix: ``(3, 3)`` or ``(B, 3, 3)``, original -> aligned canvas (numpy or tensor).
        warp_factor: float or ``B`` values (0.8 LaPa, 0 CelebAMask-HQ).
        ori_shape: ``(H, W)`` of the original image (shared by the batch).
        warped_shape: canvas size the matrix refers to; default ``(h, w)`` of ``logits``.
        grid_dtype: dtype of the coordinate computation (float64, or float32 on MPS).

    Returns:
        ``(B, C, H, W)`` (or ``(C, H, W)``) logits in the dtype of ``logits``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError('inverse_warp_logits needs a floating-point torch.Tensor')
    unbatched = logits.dim() == 3
    if unbatched:
        logits = logits[None]
    if logits.dim() != 4:
        raise ValueError(f'logits must be (C, h, w) or (B, C, h, w), got {tuple(logits.shape)}')
    out_dtype = logits.dtype
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    warped_shape = tuple(logits.shape[-2:]) if warped_shape is None else _shape2(warped_shape)
    if tuple(logits.shape[-2:]) != warped_shape:
        logits = F.interpolate(logits, size=warped_shape, mode='bilinear', align_corners=False)
    if grid_dtype is None:
        grid_dtype = torch.float32 if logits.device.type == 'mps' else torch.float64
    coords = inverse_warp_grid(matrix, warp_factor, ori_shape, warped_shape,
                               batch=logits.shape[0], device=logits.device, dtype=grid_dtype)
    size = torch.tensor([float(warped_shape[1]), float(warped_shape[0])], device=coords.device,
                        dtype=grid_dtype)
    grid = ((coords + 0.5) / size * 2.0 - 1.0).to(logits.dtype)
    out = F.grid_sample(logits, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    out = out.to(out_dtype)
    return out[0] if unbatched else out
