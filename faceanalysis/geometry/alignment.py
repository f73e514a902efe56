"""Alignment matrices: 5-point similarity to FaRL's template, box crops and centre affines.

Conventions (shared/docs/farl_protocol.md §3.1, FaRL's blueprint library), used by every function
of :mod:`faceanalysis.geometry`:

* **Pixel centres lie on integer coordinates.** Pixel ``(i, j)`` of an ``H x W`` image (row
  ``i``, column ``j``) is the point ``x = j, y = i``; the image covers
  ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
  This is OpenCV's convention (``cv2.remap`` samples pixel ``(i, j)`` at ``map[i, j]``) and
  PyTorch's ``align_corners=False`` one.
* **Points are ``(..., 2)`` arrays of ``(x, y)``**; shapes are ``(H, W)`` as in ``ndarray.shape``.
* **Matrices are 3x3 float64** acting on column vectors ``[x, y, 1]``; a matrix ``M`` of a sample
  maps **original image -> aligned (unwarped) canvas** of ``target_shape`` (usually 512x512).
  Matrices compose left to right in the order applied: ``M_rand @ M_align`` first aligns, then
  applies the random augmentation on the canvas.
* The canvas centre is ``((W - 1) / 2, (H - 1) / 2)`` (255.5 for 512), the centre of the pixel
  grid; random or fixed rotations / scales / shifts act about it (:func:`similarity_about_center`).

None of this imports torch or the rest of faceanalysis; :mod:`.tanh_warp` builds on it.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'FARL_FACE_TEMPLATE', 'LAPA_ALIGN_INDICES', 'face_template', 'estimate_similarity',
    'face_align_matrix', 'crop_resize_matrix', 'resize_matrix', 'similarity_about_center',
    'scale_about_center', 'sample_affine_params', 'random_affine_matrix', 'apply_matrix',
    'similarity_params'
]

ArrayLike = Union[np.ndarray, Sequence]
Shape = Tuple[int, int]

#: FaRL's five-point face template in ``[-1, 1]`` units of the canvas (x, y): left eye, right
#: eye, nose tip, left mouth corner, right mouth corner ("left" = image left). It is blueprint's
#: ``_standard_face_pts``: the 256-pixel template ``[[196, 226], [316, 226], [256, 286],
#: [220, 360.4], [292, 360.4]]`` divided by 256, minus 1 (farl_protocol.md §3.2).
FARL_FACE_TEMPLATE = np.array([[196.0, 226.0], [316.0, 226.0], [256.0, 286.0], [220.0, 360.4],
                               [292.0, 360.4]]) / 256.0 - 1.0
FARL_FACE_TEMPLATE.setflags(write=False)

#: Indices of FaRL's five alignment points among LaPa's 106 landmarks, in template order:
#: left pupil, right pupil, nose tip, left and right outer mouth corners (farl_protocol.md §3.2).
LAPA_ALIGN_INDICES = (104, 105, 54, 84, 90)


def _shape2(shape: Union[int, Sequence[int]]) -> Shape:
    """``(H, W)`` from an int (square) or a sequence whose first two entries are H, W."""
    if isinstance(shape, (int, np.integer)):
        return int(shape), int(shape)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f'a shape needs (H, W), got {shape}')
    return shape[0], shape[1]


def apply_matrix(points: ArrayLike, matrix: ArrayLike) -> np.ndarray:
    """Apply a 3x3 matrix to ``(..., 2)`` points (homogeneous divide included); float64."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    out = points @ matrix[:2, :2].T + matrix[:2, 2]
    denom = points @ matrix[2, :2] + matrix[2, 2]
    return out / denom[..., None]


def face_template(target_shape: Union[int, Sequence[int]] = (512, 512),
                  face_scale: float = 1.0,
                  template: Optional[ArrayLike] = None) -> np.ndarray:
    """The template points in pixels of a ``target_shape`` canvas, as FaRL computes them.

    ``target = (template * face_scale + 1) * [W - 1, H - 1] / 2``: the ``[-1, 1]`` template is
    scaled about the canvas centre ``((W - 1) / 2, (H - 1) / 2)``. For 512x512 and scale 1 this
    gives (195.617, 225.559), (315.383, 225.559), (255.5, 285.441), (219.570, 359.696),
    (291.430, 359.696) (farl_protocol.md §3.2).

    Args:
        target_shape: canvas ``(H, W)`` (or one int for a square).
        face_scale: FaRL's ``target_face_scale``; < 1 makes the face smaller on the canvas.
        template: ``(N, 2)`` points in ``[-1, 1]`` units; :data:`FARL_FACE_TEMPLATE` by default.

    Returns:
        ``(N, 2)`` float64 pixel coordinates ``(x, y)``.
    """
    h, w = _shape2(target_shape)
    std = FARL_FACE_TEMPLATE if template is None else np.asarray(template, dtype=np.float64)
    return (std * float(face_scale) + 1.0) * np.array([w - 1.0, h - 1.0]) / 2.0


def estimate_similarity(src_pts: ArrayLike, dst_pts: ArrayLike) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Minimises ``sum_i ||s R src_i + t - dst_i||^2`` over rotations ``R`` (no reflection), scales
    ``s > 0`` and translations ``t``, in closed form (Umeyama 1991: SVD of the cross-covariance,
    scale from the singular values over the source variance). This is what
    ``skimage.transform.SimilarityTransform().estimate(src, dst)`` computes, which FaRL uses; in
    2-D it equals the linear least-squares fit of ``[[a, -b, tx], [b, a, ty]]``.

    Args:
        src_pts: ``(N, 2)`` source points, ``N >= 2``.
        dst_pts: ``(N, 2)`` target points, in the same order.

    Returns:
        3x3 float64 matrix ``M`` with ``dst ~= M @ [src, 1]``.

    Raises:
        ValueError: mismatched shapes, fewer than 2 points, non-finite values, or all source
            points equal (no similarity is determined).
    """
    src = np.asarray(src_pts, dtype=np.float64)
    dst = np.asarray(dst_pts, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
        raise ValueError(f'estimate_similarity needs two (N, 2) arrays of the same shape, got '
                         f'{src.shape} and {dst.shape}')
    if src.shape[0] < 2:
        raise ValueError(f'estimate_similarity needs at least 2 point pairs, got {src.shape[0]}')
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError('estimate_similarity got non-finite points')
    num = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / num
    if src_var <= 1e-24 * max(1.0, float(np.abs(src).max()) ** 2):
        raise ValueError('estimate_similarity: all source points coincide')

    cov = dst_c.T @ src_c / num  # 2x2 cross-covariance
    u, sing, vt = np.linalg.svd(cov)
    # keep a proper rotation: flip the weakest axis if the best orthogonal map is a reflection
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float(sing @ d) / src_var

    matrix = np.eye(3)
    matrix[:2, :2] = scale * rot
    matrix[:2, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def face_align_matrix(points5: ArrayLike, target_shape: Union[int, Sequence[int]] = (512, 512),
                      face_scale: float = 1.0) -> np.ndarray:
    """FaRL's ``GetFaceAlignMatrix``: similarity from 5 face points to the template.

    Args:
        points5: ``(5, 2)`` points in the image, in template order (left eye, right eye, nose,
            left mouth corner, right mouth corner); for LaPa ``landmarks[LAPA_ALIGN_INDICES]``.
        target_shape: canvas ``(H, W)``.
        face_scale: FaRL's ``target_face_scale`` (1.0 for parsing).

    Returns:
        3x3 float64 matrix, original image -> aligned canvas.
    """
    points5 = np.asarray(points5, dtype=np.float64)
    if points5.shape != (5, 2):
        raise ValueError(f'face_align_matrix needs (5, 2) points, got shape {points5.shape}')
    return estimate_similarity(points5, face_template(target_shape, face_scale))


def crop_resize_matrix(box_yxyx: ArrayLike,
                       target_shape: Union[int, Sequence[int]] = (512, 512)) -> np.ndarray:
    """Map a box onto a ``target_shape`` canvas (blueprint ``UpdateCropAndResizeMatrix``).

    ``x' = (x - x1) / (x2 - x1) * W - 0.5``, ``y' = (y - y1) / (y2 - y1) * H - 0.5``
    (``align_corners=False``, ``offset_box_coords=False``): the box's *edges* go to the canvas
    edges ``-0.5`` and ``W - 0.5``. So a box that should cover whole pixels ``0..w-1`` is given as
    ``(-0.5, -0.5, h - 0.5, w - 0.5)``. Anisotropic when the box and canvas aspect ratios differ.

    Args:
        box_yxyx: ``(y1, x1, y2, x2)`` in original-image pixel coordinates (FaRL's order).
        target_shape: canvas ``(H, W)``.
    """
    y1, x1, y2, x2 = (float(v) for v in np.asarray(box_yxyx, dtype=np.float64).reshape(4))
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f'crop_resize_matrix needs y2 > y1 and x2 > x1, got box '
                         f'(y1, x1, y2, x2) = {(y1, x1, y2, x2)}')
    h, w = _shape2(target_shape)
    ax, ay = w / (x2 - x1), h / (y2 - y1)
    return np.array([[ax, 0.0, -x1 * ax - 0.5], [0.0, ay, -y1 * ay - 0.5], [0.0, 0.0, 1.0]])


def resize_matrix(src_shape: Union[int, Sequence[int]],
                  dst_shape: Union[int, Sequence[int]]) -> np.ndarray:
    """The pixel-centre resize ``src_shape -> dst_shape`` (``cv2.resize``, ``align_corners=False``).

    ``x' = (x + 0.5) * W' / W - 0.5``; the identity when the shapes are equal. It is
    :func:`crop_resize_matrix` of the whole image ``(-0.5, -0.5, H - 0.5, W - 0.5)``.
    """
    h, w = _shape2(src_shape)
    return crop_resize_matrix((-0.5, -0.5, h - 0.5, w - 0.5), dst_shape)


def similarity_about_center(target_shape: Union[int, Sequence[int]] = (512, 512),
                            rotation: float = 0.0, scale: float = 1.0,
                            shift: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """Rotation + uniform scale about the canvas centre, then a shift (blueprint
    ``_compose_rotate_and_scale`` with "from" and "to" centres both ``c``).

    With ``c = ((W - 1) / 2, (H - 1) / 2)``: ``p' = s R(theta) (p - c) + c + t``, i.e.
    ``[[s cos, -s sin, cx - s cos cx + s sin cy + tx], [s sin, s cos, cy - s sin cx - s cos cy
    + ty], [0, 0, 1]]``. In image coordinates (y down) a positive ``rotation`` (radians) turns
    the content clockwise on screen. Left-multiply a sample matrix with it: ``M' = A @ M``.
    """
    h, w = _shape2(target_shape)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    tx, ty = (float(v) for v in shift)
    cos, sin = float(scale) * np.cos(rotation), float(scale) * np.sin(rotation)
    return np.array([[cos, -sin, cx - cos * cx + sin * cy + tx],
                     [sin, cos, cy - sin * cx - cos * cy + ty],
                     [0.0, 0.0, 1.0]])


def scale_about_center(scale: float,
                       target_shape: Union[int, Sequence[int]] = (512, 512)) -> np.ndarray:
    """Uniform scale about the canvas centre (FaRL's ``UpdateTransformMatrix(scale_mu)`` of the
    landmark tasks: 0.8 makes a box crop fill 80% of the canvas)."""
    return similarity_about_center(target_shape, 0.0, scale)


def similarity_params(matrix: ArrayLike,
                      target_shape: Union[int, Sequence[int]] = (512, 512)) -> dict:
    """Inverse of :func:`similarity_about_center`: ``dict(rotation, scale, shift=(tx, ty))``.

    Exact for matrices built by it; for a general similarity the shift is how far the canvas
    centre moves.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    h, w = _shape2(target_shape)
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    shift = apply_matrix(centre, matrix) - centre
    return dict(rotation=float(np.arctan2(matrix[1, 0], matrix[0, 0])),
                scale=float(np.hypot(matrix[0, 0], matrix[1, 0])),
                shift=(float(shift[0]), float(shift[1])))


def _draw(rng, distribution: str, mu: float, sigma: float, size=None):
    if distribution == 'normal':
        return rng.normal(mu, sigma, size)
    if distribution == 'uniform':
        return rng.uniform(mu - sigma, mu + sigma, size)
    raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")


def _distributions(distribution: Union[str, Mapping[str, str]],
                   shift_distribution: str) -> dict:
    if isinstance(distribution, str):
        dists = dict(shift=shift_distribution, rotation=distribution, scale=distribution)
    else:
        dists = dict(shift=shift_distribution, rotation='normal', scale='normal')
        unknown = set(distribution) - set(dists)
        if unknown:
            raise KeyError(f'distribution keys must be among {sorted(dists)}, '
                           f'got {sorted(unknown)}')
        dists.update(distribution)
    for name, value in dists.items():
        if value not in ('normal', 'uniform'):
            raise ValueError(f"{name} distribution must be 'normal' or 'uniform', got {value!r}")
    return dists


def sample_affine_params(rng=None, target_shape: Union[int, Sequence[int]] = (512, 512),
                         shift: float = 0.01, rotation: float = 0.314, scale: float = 0.1,
                         scale_mu: float = 1.0,
                         distribution: Union[str, Mapping[str, str]] = 'normal',
                         shift_distribution: str = 'uniform') -> dict:
    """Draw FaRL's random-affine parameters (blueprint ``UpdateRandomTransformMatrix``).

    * shift per axis ``tx ~ D(0, shift) * W``, ``ty ~ D(0, shift) * H`` (pixels);
    * rotation ``theta ~ D(0, rotation)`` (radians);
    * scale ``s ~ D(scale_mu, scale)``;

    where ``D(mu, sigma)`` is ``N(mu, sigma)`` for ``'normal'`` and ``U(mu - sigma, mu + sigma)``
    for ``'uniform'``. ``distribution`` sets the rotation and scale laws (a string for both, or a
    dict with keys among ``shift``/``rotation``/``scale``); the shift law is
    ``shift_distribution``, uniform in both FaRL tasks. Defaults are FaRL's parsing recipe
    (farl_protocol.md §5.2: shift U(+-0.01)*512, rotation N(0, 0.314), scale N(1, 0.1));
    alignment (§5.3) is ``shift=0.05, rotation=0.174, scale=0.1, scale_mu=0.8,
    distribution='uniform'``. A normal scale is not truncated (a non-positive draw is a 10-sigma
    event at sigma 0.1).

    Args:
        rng: ``np.random.Generator``, ``np.random.RandomState`` or None for the global
            ``np.random`` state (seeded per dataloader worker by MMEngine).

    Returns:
        ``dict(rotation=float, scale=float, shift=(tx, ty))``.
    """
    rng = np.random if rng is None else rng
    h, w = _shape2(target_shape)
    dists = _distributions(distribution, shift_distribution)
    tx = float(_draw(rng, dists['shift'], 0.0, shift)) * w
    ty = float(_draw(rng, dists['shift'], 0.0, shift)) * h
    theta = float(_draw(rng, dists['rotation'], 0.0, rotation))
    s = float(_draw(rng, dists['scale'], scale_mu, scale))
    return dict(rotation=theta, scale=s, shift=(tx, ty))


def random_affine_matrix(rng=None, target_shape: Union[int, Sequence[int]] = (512, 512),
                         shift: float = 0.01, rotation: float = 0.314, scale: float = 0.1,
                         scale_mu: float = 1.0,
                         distribution: Union[str, Mapping[str, str]] = 'normal',
                         shift_distribution: str = 'uniform') -> np.ndarray:
    """A random similarity about the canvas centre, drawn by :func:`sample_affine_params`.

    Compose it on the left of the sample's matrix, ``M' = random_affine_matrix(...) @ M``, as
    FaRL does (``M_rand @ align_matrix``).
    """
    params = sample_affine_params(rng, target_shape, shift, rotation, scale, scale_mu,
                                  distribution, shift_distribution)
    return similarity_about_center(target_shape, params['rotation'], params['scale'],
                                   params['shift'])
