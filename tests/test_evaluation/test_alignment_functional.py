"""Face-alignment NME normalisers, CED, AUC and FR (farl_protocol.md §4.3, §7.2)."""
import math

import numpy as np
import pytest

from faceanalysis.evaluation.functional import (ALIGNMENT_NORM_INDICES, alignment_dataset,
                                                box_diag_norm, box_norm, ced_auc_fr, ced_curve,
                                                inter_ocular_norm, inter_pupil_norm,
                                                landmark_distance_norm, nme_per_image,
                                                simpson_integral, threshold_suffix)


def hexagon(center, radius):
    """Six eye-contour points around ``center``, the first one at the outer-left (180 deg);
    their mean is exactly ``center``."""
    angles = np.deg2rad([180, 120, 60, 0, -60, -120])
    return np.stack([center[0] + radius * np.cos(angles),
                     center[1] - radius * np.sin(angles)], 1)


def square_face(dataset):
    """A face in the box (50, 100)-(250, 300) with outer eye corners 100 px apart and pupils
    50 px apart: left eye centre (125, 200), right eye centre (175, 200), radius 25."""
    num = ALIGNMENT_NORM_INDICES[dataset]['num_keypoints']
    rng = np.random.RandomState(num)
    gt = rng.uniform(60, 240, (num, 2))
    left, right = np.array([125., 200.]), np.array([175., 200.])
    if dataset == '300w':
        gt[36:42] = hexagon(left, 25)       # 36 = (100, 200): left outer corner
        gt[42:48] = hexagon(right, 25)       # 45 = (200, 200): right outer corner
    elif dataset == 'wflw':
        gt[60], gt[72], gt[96], gt[97] = (100, 200), (200, 200), left, right
    else:  # aflw19: corners 6/11, centres 7/10
        gt[6], gt[7], gt[8] = (100, 200), left, (150, 200)
        gt[9], gt[10], gt[11] = (150, 200), right, (200, 200)
    return gt


BOX = np.array([[50., 100., 250., 300.]])  # w = h = 200


@pytest.mark.parametrize('dataset', ['300w', 'wflw', 'aflw19'])
def test_uniform_offset_square_face(dataset):
    """A (3, 4) px offset of every landmark: error 5 px, so NME = 5 / d for each normaliser."""
    gt = square_face(dataset)[None]
    pred = gt + np.array([3., 4.])
    io, ip = inter_ocular_norm(gt, dataset), inter_pupil_norm(gt, dataset)
    assert io == pytest.approx([100.0]) and ip == pytest.approx([50.0])
    assert box_norm(BOX) == pytest.approx([200.0])
    assert box_diag_norm(BOX) == pytest.approx([200.0 * math.sqrt(2)])
    assert nme_per_image(pred, gt, io) == pytest.approx([0.05])
    assert nme_per_image(pred, gt, ip) == pytest.approx([0.10])
    assert nme_per_image(pred, gt, box_norm(BOX)) == pytest.approx([0.025])
    assert nme_per_image(pred, gt, box_diag_norm(BOX)) == pytest.approx([5 / (200 * 2 ** 0.5)])


def test_pupil_definitions_follow_farl():
    """300W: the pupil is the mean of the 6 eye-contour points, not a corner; WFLW: points
    96/97; AFLW-19: the eye-centre landmarks 7/10 (no contour exists)."""
    assert ALIGNMENT_NORM_INDICES['300w']['inter_pupil'] == ((36, 37, 38, 39, 40, 41),
                                                            (42, 43, 44, 45, 46, 47))
    assert ALIGNMENT_NORM_INDICES['300w']['inter_ocular'] == ((36,), (45,))
    assert ALIGNMENT_NORM_INDICES['wflw']['inter_pupil'] == ((96,), (97,))
    assert ALIGNMENT_NORM_INDICES['wflw']['inter_ocular'] == ((60,), (72,))
    assert ALIGNMENT_NORM_INDICES['aflw19']['inter_pupil'] == ((7,), (10,))
    assert ALIGNMENT_NORM_INDICES['aflw19']['inter_ocular'] == ((6,), (11,))
    gt = square_face('300w')
    gt[37] += (0, 30)  # move one contour point: the 300W pupil moves by 30/6 px vertically
    assert inter_pupil_norm(gt, '300w') == pytest.approx([math.hypot(50, 5)])
    assert landmark_distance_norm(gt, 36, 45) == pytest.approx([100.0])


def test_nme_mixed_errors_and_several_images():
    gt = np.zeros((2, 4, 2))
    pred = gt.copy()
    pred[0, :2, 0] = 10.0            # image 0: errors 10, 10, 0, 0 -> mean 5
    pred[1] += np.array([6., 8.])    # image 1: every error 10 -> mean 10
    assert nme_per_image(pred, gt, [50.0, 20.0]) == pytest.approx([0.1, 0.5])
    assert nme_per_image(pred[0], gt[0], 5.0) == pytest.approx([1.0])  # one image, (K, 2)


def test_bad_inputs_are_clear_errors():
    gt = square_face('300w')[None]
    with pytest.raises(ValueError, match='has 98 landmarks but the ground truth has 68'):
        inter_ocular_norm(gt, 'wflw')
    with pytest.raises(KeyError, match='unknown face-alignment dataset'):
        inter_ocular_norm(gt, 'cofw')
    with pytest.raises(ValueError, match='shape'):
        nme_per_image(gt[:, :5], gt, [1.0])
    with pytest.raises(ValueError, match='must be finite and > 0'):
        nme_per_image(gt, gt, [0.0])
    with pytest.raises(ValueError, match='not finite'):
        box_norm([[0, 0, np.nan, 10]])
    with pytest.raises(ValueError, match='width'):
        box_norm([[10, 10, 5, 20]])
    with pytest.raises(ValueError, match='empty set'):
        ced_auc_fr([], 0.1)
    with pytest.raises(ValueError, match='NaN'):
        ced_auc_fr([0.01, np.nan], 0.1)
    assert alignment_dataset('AFLW-19') == alignment_dataset('aflw') == 'aflw19'
    assert alignment_dataset('ibug300w') == '300w'


def test_grid_quirk_and_suffixes():
    """np.arange(0, thr + 1e-4, 1e-4): 1001 points ending at 0.1, but 702 ending at 0.0701."""
    x, ced = ced_curve([0.05], 0.1)
    assert len(x) == 1001 and x[-1] == pytest.approx(0.1, abs=1e-15)
    x, ced = ced_curve([0.05], 0.07)
    assert len(x) == 702 and x[-1] == pytest.approx(0.0701, abs=1e-12)
    assert threshold_suffix('inter_ocular', 0.1) == 'inter_ocular_10'
    assert threshold_suffix('box', 0.07) == 'box_7'


def direct_ced_auc_fr(nmes, threshold, step=1e-4):
    """The definition, written independently: CED by counting, Simpson with the uniform step
    ``h`` (composite 1-4-2-...-4-1 weights) and SciPy<1.11's 'avg' rule for an odd interval."""
    nmes = np.asarray(nmes)
    n = len(np.arange(0, threshold + step, step))  # FaRL's grid length (702 for 0.07)
    x = step * np.arange(n)
    ced = np.array([np.sum(nmes <= xi) / len(nmes) for xi in x])

    def simpson_uniform(y):
        assert len(y) % 2 == 1
        w = np.ones(len(y))
        w[1:-1:2], w[2:-1:2] = 4, 2
        return step / 3 * np.dot(w, y)

    if n % 2 == 1:
        area = simpson_uniform(ced)
    else:
        area = 0.5 * ((simpson_uniform(ced[:-1]) + step * (ced[-2] + ced[-1]) / 2) +
                      (step * (ced[0] + ced[1]) / 2 + simpson_uniform(ced[1:])))
    return area / threshold, 1 - ced[-1]


@pytest.mark.parametrize('threshold', [0.1, 0.07])
def test_auc_fr_equal_the_definition(threshold):
    rng = np.random.RandomState(1)
    nmes = np.abs(rng.normal(0.04, 0.025, 400))
    auc, fr, xaxis, ced = ced_auc_fr(nmes, threshold)
    ref_auc, ref_fr = direct_ced_auc_fr(nmes, threshold)
    assert auc == pytest.approx(ref_auc, abs=1e-9)
    assert fr == pytest.approx(ref_fr, abs=1e-12)
    assert fr == pytest.approx(np.mean(nmes > xaxis[-1]))


@pytest.mark.parametrize('threshold', [0.1, 0.07])
def test_auc_of_a_step_ced_is_the_exact_integral(threshold):
    """NMEs {a, b, c}: CED is a step function, its exact integral over [0, thr] divided by thr
    is sum(thr - nme_i)/N/thr over nme_i < thr; Simpson on the 1e-4 grid is within a few
    grid steps of it (and within 1e-9 of the direct implementation)."""
    nmes = np.array([0.01234, 0.04567, 0.0811])
    auc, fr, xaxis, ced = ced_auc_fr(nmes, threshold)
    exact = np.sum(np.clip(threshold - nmes, 0, None)) / len(nmes) / threshold
    assert auc == pytest.approx(exact, abs=3 * 1e-4 / threshold)
    assert auc == pytest.approx(direct_ced_auc_fr(nmes, threshold)[0], abs=1e-9)
    assert fr == pytest.approx(1 / 3 if threshold == 0.07 else 0.0)


def test_perfect_prediction():
    """AUC 1 and FR 0 at 0.1; at 0.07 FaRL's 702-point grid ends at 0.0701, so a perfect
    prediction integrates to 0.0701 / 0.07 (kept, as FaRL logs it)."""
    auc, fr, _, ced = ced_auc_fr(np.zeros(10), 0.1)
    assert auc == pytest.approx(1.0, abs=1e-12) and fr == 0.0 and (ced == 1).all()
    auc, fr, _, _ = ced_auc_fr(np.zeros(10), 0.07)
    assert auc == pytest.approx(0.0701 / 0.07, abs=1e-12) and fr == 0.0


def test_matches_scipy_1_10_simps():
    """Values computed with FaRL's AUC_FR code under SciPy 1.10.1 (``simps``, even='avg'):
    reproduced to float precision; SciPy>=1.11's simpson (Cartwright) differs for 702 points."""
    three = [0.01234, 0.05, 0.0811]
    uniform = np.random.RandomState(0).uniform(0, 0.12, 300)
    for nmes, threshold, auc_ref, fr_ref in (
            (three, 0.07, 0.370952380952381, 0.33333333333333337),
            (three, 0.05, 0.2526666666666667, 0.33333333333333337),
            (three, 0.1, 0.5221111111111111, 0.0),
            (uniform, 0.07, 0.2869476190476191, 0.43333333333333335),
            (uniform, 0.1, 0.4142077777777778, 0.17000000000000004)):
        auc, fr, _, _ = ced_auc_fr(nmes, threshold)
        assert auc == pytest.approx(auc_ref, rel=1e-13, abs=1e-15)
        assert fr == pytest.approx(fr_ref, abs=1e-15)
    modern, _, _, _ = ced_auc_fr(three, 0.07, even='simpson')
    assert abs(modern - 0.370952380952381) > 1e-4
    odd_x = np.linspace(0, 1, 11)  # odd number of points: the rules agree
    assert simpson_integral(odd_x ** 2, odd_x) == simpson_integral(odd_x ** 2, odd_x, 'simpson')
