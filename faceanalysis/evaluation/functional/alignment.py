"""Face-alignment NME, CED, AUC and failure rate, as FaRL scores them (pure numpy / SciPy).

Source: shared/docs/farl_protocol.md §4.3 (landmark ids) and §7.2 (definitions), i.e. FaRL's
``farl/experiments/face_alignment/scorer.py`` and ``scorers/{ibug300w,wflw,aflw19}.yaml``.

**NME** of one image: the mean over *all* K landmarks of ``||pred_k - gt_k||_2 / d``, in
original-image pixels, then averaged over images. FaRL uses every landmark (no visibility mask;
the AFLW-19 coordinates of occluded points are annotated and scored too). The normaliser ``d``:

* ``inter_ocular``: ``||mean(gt[left]) - mean(gt[right])||`` with the outer eye corners;
* ``inter_pupil``: the same with the pupils, as FaRL defines them per dataset
  (:data:`ALIGNMENT_NORM_INDICES`):

  - 300W (68 points) has no pupil landmark: the pupil is the **mean of the six eye-contour
    points** (36..41 and 42..47);
  - WFLW (98 points) annotates the pupils: points 96 and 97 (no averaging);
  - AFLW-19 has no eye contour, only three points per eye (outer corner, centre, inner corner):
    FaRL takes the **eye-centre landmarks 7 and 10** as the pupils (no averaging);

* ``box``: ``sqrt(w * h)`` and ``diag``: ``sqrt(w**2 + h**2)`` of the ground-truth face box
  (``w = x2 - x1``, ``h = y2 - y1``; for AFLW-19 the AFLWinfo box, not a landmark box). Both
  are symmetric in ``w`` and ``h``, so FaRL's ``(y1, x1, y2, x2)`` box order changes nothing.

**CED / AUC / FR** (FaRL's ``AUC_FR``, after HRNet issue #6): ``xaxis = np.arange(0, thr + step,
step)`` with ``step = 1e-4``; ``CED(x)`` = fraction of images with ``NME <= x``; ``AUC =
simps(CED, xaxis) / thr``; ``FR = 1 - CED(xaxis[-1])``. ``np.arange``'s floating-point end gives
1001 points ending at exactly 0.1 for ``thr = 0.1``, but **702 points ending at 0.0701** for
``thr = 0.07`` (also 502 points for 0.05): the grid and the FR then extend one step past the
threshold, while AUC is still divided by ``thr``. We reproduce this quirk on purpose.

**The SciPy function.** FaRL calls ``scipy.integrate.simps`` (SciPy of 2021, default
``even='avg'``), removed in SciPy 1.14; ``scipy.integrate.simpson`` is its successor. Both agree
exactly when the number of points is odd (an even number of intervals, e.g. 1001 points for 0.1).
For an even number of points (an odd number of intervals, e.g. 702 points for 0.07) Simpson's rule
needs a fix-up for one interval: ``simps(even='avg')`` averaged "Simpson on the first N-1 points +
trapezoid on the last interval" and "trapezoid on the first interval + Simpson on the last N-1
points", whereas ``simpson`` since SciPy 1.11 uses Cartwright's quadratic correction for the last
interval (``even='simpson'``, the only behaviour left in SciPy >= 1.14). The two differ in the
5th-6th decimal of an AUC. :func:`simpson_integral` therefore uses ``scipy.integrate.simpson`` on
odd-length pieces only and assembles ``'avg'`` itself, which reproduces the old ``simps`` to
floating-point precision on every SciPy (checked against SciPy 1.10.1's ``simps``; the test pins a
value computed with it); ``even='simpson'`` gives the modern SciPy value instead.

All functions take and return plain fractions (an NME of 0.0293, an AUC of 0.6116); the metric
(:class:`faceanalysis.evaluation.FaceAlignmentMetric`) reports them x100 as FaRL's tables do.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple, Union

import numpy as np
from scipy.integrate import simpson

__all__ = [
    'ALIGNMENT_NORM_INDICES', 'NORMALIZERS', 'LANDMARK_NORMALIZERS', 'BOX_NORMALIZERS',
    'alignment_dataset', 'landmark_distance_norm', 'inter_ocular_norm', 'inter_pupil_norm',
    'box_norm', 'box_diag_norm', 'nme_per_image', 'ced_curve', 'ced_auc_fr', 'simpson_integral',
    'threshold_suffix'
]

#: every normaliser FaRL reports, in report order
NORMALIZERS = ('inter_ocular', 'inter_pupil', 'box', 'diag')
#: normalisers computed from the ground-truth landmarks (need the dataset's landmark ids)
LANDMARK_NORMALIZERS = ('inter_ocular', 'inter_pupil')
#: normalisers computed from the ground-truth face box
BOX_NORMALIZERS = ('box', 'diag')

#: 0-based landmark ids of FaRL's ``NormalizeByLandmarks`` (farl_protocol.md §4.3):
#: ``normaliser -> (left ids, right ids)``; each side's points are averaged first
ALIGNMENT_NORM_INDICES: Dict[str, Dict[str, object]] = {
    '300w': dict(num_keypoints=68,
                 inter_ocular=((36,), (45,)),                      # outer eye corners
                 inter_pupil=((36, 37, 38, 39, 40, 41),            # mean of each eye's contour
                              (42, 43, 44, 45, 46, 47))),
    'wflw': dict(num_keypoints=98,
                 inter_ocular=((60,), (72,)),                      # outer eye corners
                 inter_pupil=((96,), (97,))),                      # annotated pupils
    'aflw19': dict(num_keypoints=19,
                   inter_ocular=((6,), (11,)),                     # outer eye corners
                   inter_pupil=((7,), (10,))),                     # eye centres (no contour)
}

_DATASET_ALIASES = {'300w': '300w', 'ibug300w': '300w', 'face300w': '300w', 'wflw': 'wflw',
                    'aflw': 'aflw19', 'aflw19': 'aflw19'}


def alignment_dataset(name: str) -> str:
    """``'300W'``, ``'ibug300w'``, ``'WFLW'``, ``'AFLW'``, ``'AFLW-19'`` -> a key of
    :data:`ALIGNMENT_NORM_INDICES`."""
    key = ''.join(ch for ch in str(name).lower() if ch.isalnum())
    if key not in _DATASET_ALIASES:
        raise KeyError(f'unknown face-alignment dataset {name!r}: landmark normalisers are '
                       f'defined for {sorted(ALIGNMENT_NORM_INDICES)}')
    return _DATASET_ALIASES[key]


def _landmarks(points: np.ndarray, what: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f'{what} must be (N, K, 2) landmarks, got shape {points.shape}')
    return points


def _positive(norm: np.ndarray, what: str) -> np.ndarray:
    bad = ~np.isfinite(norm) | (norm <= 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f'{what}: normaliser of image {index} is {norm[index]!r} (must be '
                         f'finite and > 0); {int(bad.sum())} image(s) affected')
    return norm


def landmark_distance_norm(gt: np.ndarray, left_ids: Union[int, Sequence[int]],
                           right_ids: Union[int, Sequence[int]]) -> np.ndarray:
    """FaRL's ``NormalizeByLandmarks``: ``||mean(gt[:, left]) - mean(gt[:, right])||``, ``(N,)``."""
    gt = _landmarks(gt, 'gt')
    left = [left_ids] if isinstance(left_ids, (int, np.integer)) else list(left_ids)
    right = [right_ids] if isinstance(right_ids, (int, np.integer)) else list(right_ids)
    num = gt.shape[1]
    for index in left + right:
        if not -num <= index < num:
            raise IndexError(f'landmark id {index} out of range for {num} landmarks')
    return np.linalg.norm(gt[:, left].mean(1) - gt[:, right].mean(1), axis=-1)


def _dataset_norm(gt: np.ndarray, dataset: str, norm: str) -> np.ndarray:
    key = alignment_dataset(dataset)
    table = ALIGNMENT_NORM_INDICES[key]
    gt = _landmarks(gt, 'gt')
    if gt.shape[1] != table['num_keypoints']:
        raise ValueError(f'{key} has {table["num_keypoints"]} landmarks but the ground truth has '
                         f'{gt.shape[1]}')
    left, right = table[norm]
    return landmark_distance_norm(gt, left, right)


def inter_ocular_norm(gt: np.ndarray, dataset: str) -> np.ndarray:
    """Outer-eye-corner distance of each image, ``(N,)`` (300W 36/45, WFLW 60/72, AFLW 6/11)."""
    return _dataset_norm(gt, dataset, 'inter_ocular')


def inter_pupil_norm(gt: np.ndarray, dataset: str) -> np.ndarray:
    """Pupil distance of each image, ``(N,)``: 300W mean(36..41)/mean(42..47), WFLW 96/97,
    AFLW-19 eye centres 7/10 (see the module docstring)."""
    return _dataset_norm(gt, dataset, 'inter_pupil')


def _box_sides(boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes must be (N, 4) (x1, y1, x2, y2), got shape {boxes.shape}')
    if not np.isfinite(boxes).all():
        index = int(np.flatnonzero(~np.isfinite(boxes).all(1))[0])
        raise ValueError(f'box {index} is not finite: {boxes[index].tolist()}')
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def box_norm(boxes: np.ndarray) -> np.ndarray:
    """``sqrt(w * h)`` of ``(N, 4)`` boxes ``(x1, y1, x2, y2)`` (FaRL's ``NormalizeByBox``)."""
    w, h = _box_sides(boxes)
    if ((w <= 0) | (h <= 0)).any():
        index = int(np.flatnonzero((w <= 0) | (h <= 0))[0])
        raise ValueError(f'box {index} has width {w[index]} and height {h[index]}; boxes are '
                         '(x1, y1, x2, y2) with x2 > x1 and y2 > y1')
    return np.sqrt(w * h)


def box_diag_norm(boxes: np.ndarray) -> np.ndarray:
    """``sqrt(w**2 + h**2)`` of ``(N, 4)`` boxes (FaRL's ``NormalizeByBoxDiag``)."""
    w, h = _box_sides(boxes)
    return np.sqrt(w * w + h * h)


def nme_per_image(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """``mean_k ||pred[n, k] - gt[n, k]|| / norm[n]`` for each image, ``(N,)`` (fractions).

    ``pred`` and ``gt`` are ``(N, K, 2)`` (or ``(K, 2)`` for one image) in the same pixel frame;
    ``norm`` is ``(N,)`` (or a scalar) and must be finite and positive.
    """
    pred = _landmarks(pred, 'pred')
    gt = _landmarks(gt, 'gt')
    if pred.shape != gt.shape:
        raise ValueError(f'pred landmarks of shape {pred.shape} but ground truth of shape '
                         f'{gt.shape}')
    norm = np.broadcast_to(np.asarray(norm, dtype=np.float64).reshape(-1), (gt.shape[0],))
    _positive(norm, 'nme_per_image')
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) / norm


def simpson_integral(y: np.ndarray, x: np.ndarray, even: str = 'avg') -> float:
    """``scipy.integrate.simps(y, x)`` of SciPy < 1.11 (``even='avg'``) on any SciPy.

    Odd number of points: plain ``scipy.integrate.simpson`` (identical in every version). Even
    number of points: ``'avg'`` averages "Simpson on ``[:-1]`` + trapezoid on the last interval"
    and "trapezoid on the first interval + Simpson on ``[1:]``" (old ``simps``, FaRL);
    ``'simpson'`` calls ``scipy.integrate.simpson`` as is (Cartwright's correction, SciPy >= 1.11).
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if y.ndim != 1 or y.shape != x.shape:
        raise ValueError(f'y and x must be 1-D of the same length, got {y.shape} and {x.shape}')
    if len(y) < 3:
        raise ValueError(f'Simpson integration needs at least 3 points, got {len(y)}')
    if even not in ('avg', 'simpson'):
        raise ValueError(f"even must be 'avg' (FaRL, SciPy < 1.11) or 'simpson', got {even!r}")
    if len(y) % 2 == 1 or even == 'simpson':
        return float(simpson(y, x=x))
    first = simpson(y[:-1], x=x[:-1]) + 0.5 * (x[-1] - x[-2]) * (y[-1] + y[-2])
    last = 0.5 * (x[1] - x[0]) * (y[0] + y[1]) + simpson(y[1:], x=x[1:])
    return float((first + last) / 2.0)


def _nme_array(nmes: np.ndarray) -> np.ndarray:
    nmes = np.asarray(nmes, dtype=np.float64).reshape(-1)
    if nmes.size == 0:
        raise ValueError('no NME to build a CED from (empty set of images)')
    if not np.isfinite(nmes).all():
        raise ValueError(f'{int((~np.isfinite(nmes)).sum())} NME value(s) are NaN or infinite')
    return nmes


def ced_curve(nmes: np.ndarray, threshold: float,
              step: float = 1e-4) -> Tuple[np.ndarray, np.ndarray]:
    """FaRL's grid ``np.arange(0, threshold + step, step)`` and ``CED(x) = mean(nmes <= x)``."""
    nmes = np.sort(_nme_array(nmes))
    if not (math.isfinite(threshold) and math.isfinite(step) and 0 < step and
            2 * step <= threshold):
        raise ValueError(f'need 0 < 2 * step <= threshold, got threshold={threshold}, '
                         f'step={step}')
    xaxis = np.arange(0., threshold + step, step)
    ced = np.searchsorted(nmes, xaxis, side='right') / float(len(nmes))  # count(nme <= x) / N
    return xaxis, ced


def ced_auc_fr(nmes: np.ndarray, threshold: float, step: float = 1e-4,
               even: str = 'avg') -> Tuple[float, float, np.ndarray, np.ndarray]:
    """FaRL's ``AUC_FR``: ``(auc, fr, xaxis, ced)``, ``auc`` and ``fr`` as fractions in [0, 1].

    ``auc = simps(ced, xaxis) / threshold`` (:func:`simpson_integral`, ``even`` as there) and
    ``fr = 1 - ced[-1]``. For ``threshold=0.07`` the grid has 702 points and ends at 0.0701
    (FaRL's ``np.arange`` quirk, kept).
    """
    xaxis, ced = ced_curve(nmes, threshold, step)
    auc = simpson_integral(ced, xaxis, even=even) / threshold
    fr = 1.0 - float(ced[-1])
    return float(auc), fr, xaxis, ced


def threshold_suffix(norm: str, threshold: float) -> str:
    """FaRL's ``suffix_name``: ``('inter_ocular', 0.1) -> 'inter_ocular_10'``, ``('box', 0.07) ->
    'box_7'`` (the threshold in percent, ``%g``)."""
    return f'{norm}_{threshold * 100:g}'
