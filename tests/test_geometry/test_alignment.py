"""Alignment matrices against farl_protocol.md §3.1/§3.2 and independent least squares."""
import numpy as np
import pytest

from faceanalysis.geometry import (FARL_FACE_TEMPLATE, LAPA_ALIGN_INDICES, apply_matrix,
                                   crop_resize_matrix, estimate_similarity, face_align_matrix,
                                   face_template, random_affine_matrix, resize_matrix,
                                   sample_affine_params, scale_about_center,
                                   similarity_about_center, similarity_params)

# farl_protocol.md §3.2: the template on a 512 canvas at face scale 1
DOC_TARGET_512 = np.array([[195.617, 225.559], [315.383, 225.559], [255.5, 285.441],
                           [219.570, 359.696], [291.430, 359.696]])


def _similarity(theta, scale, tx, ty):
    c, s = scale * np.cos(theta), scale * np.sin(theta)
    return np.array([[c, -s, tx], [s, c, ty], [0., 0., 1.]])


def _lstsq_similarity(src, dst):
    """Independent solution: linear least squares on x' = a x - b y + tx, y' = b x + a y + ty."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    (a, b, tx, ty), *_ = np.linalg.lstsq(np.array(rows, float), np.array(rhs, float), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty], [0, 0, 1]])


def test_template_constants():
    assert LAPA_ALIGN_INDICES == (104, 105, 54, 84, 90)
    np.testing.assert_allclose(FARL_FACE_TEMPLATE * 256 + 256,
                               [[196, 226], [316, 226], [256, 286], [220, 360.4], [292, 360.4]])
    np.testing.assert_allclose(face_template((512, 512), 1.0), DOC_TARGET_512, atol=6e-4)
    np.testing.assert_allclose(face_template(512), DOC_TARGET_512, atol=6e-4)
    # scale about the canvas centre 255.5; a non-square canvas scales x by W-1 and y by H-1
    np.testing.assert_allclose(face_template(512, 0.5) - 255.5, (DOC_TARGET_512 - 255.5) * 0.5,
                               atol=6e-4)
    rect = face_template((256, 512))
    np.testing.assert_allclose(rect[:, 0], DOC_TARGET_512[:, 0], atol=6e-4)
    np.testing.assert_allclose(rect[:, 1], (FARL_FACE_TEMPLATE[:, 1] + 1) * 255 / 2)


def test_template_onto_itself_is_identity():
    matrix = face_align_matrix(face_template(), (512, 512))
    np.testing.assert_allclose(matrix, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(apply_matrix(face_template(), matrix), DOC_TARGET_512, atol=6e-4)


@pytest.mark.parametrize('theta,scale,tx,ty', [(0.3, 1.7, 40., -25.), (-2.5, 0.31, 600., 90.),
                                               (np.pi, 1.0, 0., 0.)])
def test_recovers_known_similarity(theta, scale, tx, ty):
    known = _similarity(theta, scale, tx, ty)
    # the face in the "image" is the template moved by `known`; aligning must undo it exactly
    points = apply_matrix(face_template(), known)
    matrix = face_align_matrix(points, (512, 512))
    np.testing.assert_allclose(matrix, np.linalg.inv(known), atol=1e-9)
    np.testing.assert_allclose(apply_matrix(points, matrix), DOC_TARGET_512, atol=6e-4)
    # and estimate_similarity in the other direction recovers `known` itself
    np.testing.assert_allclose(estimate_similarity(face_template(), points), known, atol=1e-9)


def test_matches_lstsq_on_noisy_points():
    rng = np.random.default_rng(0)
    for num in (2, 3, 5, 12):
        for _ in range(20):
            src = rng.uniform(-200, 800, (num, 2))
            dst = apply_matrix(src, _similarity(rng.uniform(-3, 3), rng.uniform(0.2, 4),
                                                *rng.uniform(-300, 300, 2)))
            dst += rng.normal(0, 5, dst.shape)
            np.testing.assert_allclose(estimate_similarity(src, dst), _lstsq_similarity(src, dst),
                                       rtol=1e-7, atol=1e-7)


def test_two_point_closed_form():
    """Two points determine the similarity: z' = a z + b in complex numbers."""
    src = np.array([[10., 20.], [50., -5.]])
    dst = np.array([[300., 100.], [280., 180.]])
    z, w = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    a = (w[1] - w[0]) / (z[1] - z[0])
    b = w[0] - a * z[0]
    expected = np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0, 0, 1]])
    np.testing.assert_allclose(estimate_similarity(src, dst), expected, atol=1e-9)


def test_mirrored_points_give_a_rotation_not_a_reflection():
    src = face_template()
    dst = src * np.array([-1., 1.]) + np.array([511., 0.])  # mirror image of the face
    matrix = estimate_similarity(src, dst)
    assert np.linalg.det(matrix[:2, :2]) > 0
    np.testing.assert_allclose(matrix, _lstsq_similarity(src, dst), atol=1e-8)


def test_estimate_similarity_errors():
    with pytest.raises(ValueError, match='coincide'):
        estimate_similarity(np.ones((5, 2)), np.random.rand(5, 2))
    with pytest.raises(ValueError, match='at least 2'):
        estimate_similarity(np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match='same shape'):
        estimate_similarity(np.ones((5, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match='non-finite'):
        estimate_similarity(np.array([[0, 0], [1, np.nan]]), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r'\(5, 2\)'):
        face_align_matrix(np.zeros((106, 2)))


def test_crop_resize_matrix():
    # (y1, x1, y2, x2): the box edges go to the canvas edges -0.5 and W - 0.5 (§3.1)
    box = (100., 50., 300., 450.)
    matrix = crop_resize_matrix(box, (512, 256))
    corners = apply_matrix([[50., 100.], [450., 300.]], matrix)
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [255.5, 511.5]])
    # x' = (x - x1) / (x2 - x1) * W - 0.5 for an interior point
    np.testing.assert_allclose(apply_matrix([200., 150.], matrix),
                               [(200 - 50) / 400 * 256 - 0.5, (150 - 100) / 200 * 512 - 0.5])
    with pytest.raises(ValueError):
        crop_resize_matrix((10, 10, 5, 20), 512)


def test_resize_matrix_pixel_centres():
    np.testing.assert_allclose(resize_matrix((512, 512), (512, 512)), np.eye(3), atol=1e-12)
    down = resize_matrix((1024, 1024), (512, 512))
    # cv2.resize / align_corners=False: output pixel 0 sits between input pixels 0 and 1
    np.testing.assert_allclose(apply_matrix([[0.5, 0.5], [1023., 1023.]], down),
                               [[0., 0.], [511.25, 511.25]])


def test_similarity_about_center_formula():
    theta, s, tx, ty = 0.4, 1.3, 3., -2.
    cx = cy = 255.5
    cos, sin = s * np.cos(theta), s * np.sin(theta)
    doc = np.array([[cos, -sin, cx - cos * cx + sin * cy + tx],
                    [sin, cos, cy - sin * cx - cos * cy + ty], [0, 0, 1]])
    matrix = similarity_about_center((512, 512), theta, s, (tx, ty))
    np.testing.assert_allclose(matrix, doc, atol=1e-12)
    np.testing.assert_allclose(apply_matrix([255.5, 255.5], matrix), [258.5, 253.5])
    params = similarity_params(matrix)
    assert params['rotation'] == pytest.approx(theta) and params['scale'] == pytest.approx(s)
    np.testing.assert_allclose(params['shift'], (tx, ty), atol=1e-9)
    np.testing.assert_allclose(apply_matrix([[255.5, 255.5], [355.5, 255.5]],
                                            scale_about_center(0.8)),
                               [[255.5, 255.5], [335.5, 255.5]])


def _draw_params(num, **kwargs):
    rng = np.random.default_rng(1234)
    params = [similarity_params(random_affine_matrix(rng, (512, 512), **kwargs))
              for _ in range(num)]
    return (np.array([p['rotation'] for p in params]), np.array([p['scale'] for p in params]),
            np.array([p['shift'] for p in params]))


def test_random_affine_parsing_statistics():
    """FaRL parsing (§5.2): rotation N(0, 0.314), scale N(1, 0.1), shift U(+-0.01) * 512."""
    rot, scale, shift = _draw_params(8000)
    assert abs(rot.mean()) < 0.015 and rot.std() == pytest.approx(0.314, abs=0.012)
    assert abs(scale.mean() - 1) < 0.005 and scale.std() == pytest.approx(0.1, abs=0.004)
    # normal, not uniform: about 4.6% of draws beyond 2 sigma
    assert 0.03 < np.mean(np.abs(rot) > 2 * 0.314) < 0.065
    assert np.abs(shift).max() <= 5.12 + 1e-9 and np.abs(shift).max() > 5.0
    np.testing.assert_allclose(shift.std(axis=0), 5.12 / np.sqrt(3), rtol=0.05)
    np.testing.assert_allclose(shift.mean(axis=0), 0, atol=0.15)


def test_random_affine_alignment_statistics():
    """FaRL alignment (§5.3): everything uniform; shift +-0.05*512, theta +-0.174, s 0.8+-0.1."""
    rot, scale, shift = _draw_params(4000, shift=0.05, rotation=0.174, scale=0.1, scale_mu=0.8,
                                     distribution='uniform')
    assert np.abs(rot).max() <= 0.174 and np.abs(rot).max() > 0.17
    assert rot.std() == pytest.approx(0.174 / np.sqrt(3), rel=0.05)
    assert 0.7 <= scale.min() and scale.max() <= 0.9 and abs(scale.mean() - 0.8) < 0.005
    assert np.abs(shift).max() <= 25.6 + 1e-9


def test_sample_affine_params_validation():
    params = sample_affine_params(np.random.default_rng(0), 512, 0, 0, 0, 1.0)
    assert params == dict(rotation=0.0, scale=1.0, shift=(0.0, 0.0))
    assert set(sample_affine_params(None)) == {'rotation', 'scale', 'shift'}
    with pytest.raises(ValueError):
        random_affine_matrix(None, distribution='gaussian')
    with pytest.raises(KeyError):
        random_affine_matrix(None, distribution=dict(angle='normal'))
    # a dict picks each law; unnamed ones keep the parsing defaults
    rng = np.random.default_rng(0)
    rots = [sample_affine_params(rng, rotation=0.1, distribution=dict(rotation='uniform'))
            ['rotation'] for _ in range(500)]
    assert max(np.abs(rots)) <= 0.1
