"""RoI tanh-warp against farl_protocol.md §3.3/§3.4, written out independently here."""
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceanalysis.datasets.synthetic import render_synthetic_face
from faceanalysis.geometry import (LAPA_ALIGN_INDICES, TANH_CLIP, apply_matrix,
                                   face_align_matrix, inverse_transform_points, inverse_warp_grid,
                                   inverse_warp_logits, inverse_warp_map, random_affine_matrix,
                                   tanh_warp_forward, tanh_warp_inverse, transform_points,
                                   unwarp_image, warp_image, warp_map)


# ---- the doc's formulas, one scalar at a time (reference implementation) ----------------------
def doc_forward(p, size, wf):
    """Aligned px -> warped px, §3.3 'Forward map'."""
    n = p / size * 2 - 1
    if wf > 0 and n > 1 - wf:
        n = math.tanh((n - (1 - wf)) / wf) * wf + (1 - wf)
    elif wf > 0 and n < -(1 - wf):
        n = math.tanh((n + (1 - wf)) / wf) * wf - (1 - wf)
    return (n + 1) / 2 * size


def doc_inverse(p, size, wf):
    """Warped px -> aligned px, §3.3 'Inverse map'."""
    n = p / size * 2 - 1
    clip = lambda v: min(max(v, -0.999), 0.999)  # noqa: E731
    if wf > 0 and n > 1 - wf:
        n = math.atanh(clip((n - (1 - wf)) / wf)) * wf + (1 - wf)
    elif wf > 0 and n < -(1 - wf):
        n = math.atanh(clip((n + (1 - wf)) / wf)) * wf - (1 - wf)
    return (n + 1) / 2 * size


def doc_forward_array(p, size, wf):
    """doc_forward on an array, branch by branch (checked against it below)."""
    n = p / size * 2 - 1
    out = n.copy()
    if wf > 0:
        hi, lo = n > 1 - wf, n < -(1 - wf)
        out[hi] = np.tanh((n[hi] - (1 - wf)) / wf) * wf + (1 - wf)
        out[lo] = np.tanh((n[lo] + (1 - wf)) / wf) * wf - (1 - wf)
    return (out + 1) / 2 * size


def doc_inverse_map(matrix, ori_shape, size, wf):
    """§3.4: warped coordinates of every original pixel centre (M, then the forward map)."""
    h, w = ori_shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    v = np.einsum('ij,jhw->ihw', matrix, np.stack([xs, ys, np.ones_like(xs)]))
    map_x = doc_forward_array(v[0] / v[2], size[1], wf).astype(np.float32)
    map_y = doc_forward_array(v[1] / v[2], size[0], wf).astype(np.float32)
    return map_x, map_y


def cv2_unwarp_reference(logits_hwc, matrix, ori_shape, wf):
    """FaRL's cv2.remap of the logits. OpenCV 5 interpolates float images exactly only up to 4
    channels (beyond, it snaps positions to 1/32 px, ~1e-2 on random logits), so remap per
    channel; FaRL's older OpenCV snapped always, a difference far below any argmax change."""
    map_x, map_y = doc_inverse_map(matrix, ori_shape, logits_hwc.shape[:2], wf)
    return np.stack([cv2.remap(np.ascontiguousarray(logits_hwc[..., c]), map_x, map_y,
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                     for c in range(logits_hwc.shape[2])], axis=-1)


# ---- point maps --------------------------------------------------------------------------------
def test_doc_numeric_checks():
    """§3.3 at wf 0.8 on a 512 canvas: warped px 0 -> -573.5, 100 -> 89.1, 204.8 -> 204.8,
    400 -> 407.3, 511 -> 922.9 aligned px; the canvas covers aligned [-573.5, 1085.5]."""
    warped = np.array([0., 100., 204.8, 400., 511., 512.])
    aligned = tanh_warp_inverse(np.stack([warped, warped], -1), 512, 0.8)
    np.testing.assert_allclose(aligned[:, 0], [-573.5, 89.1, 204.8, 407.3, 922.9, 1085.5],
                               atol=0.05)
    np.testing.assert_allclose(aligned[:, 0], aligned[:, 1])
    # forward goes back (pixel 0 and 512 are in the clipped border band, see below)
    np.testing.assert_allclose(tanh_warp_forward(aligned[1:5], 512, 0.8)[:, 0], warped[1:5],
                               atol=1e-9)
    # linear in the middle |n| <= 0.2: 204.8 .. 307.2 px unchanged, slope 1 at the joins
    mid = np.linspace(204.8, 307.2, 11)[:, None].repeat(2, 1)
    np.testing.assert_allclose(tanh_warp_forward(mid, 512, 0.8), mid, atol=1e-12)
    eps = 1e-4
    for x in (204.8, 307.2):
        slope = (tanh_warp_forward([[x + eps, 0]], 512, .8) -
                 tanh_warp_forward([[x - eps, 0]], 512, .8))[0, 0] / (2 * eps)
        assert slope == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize('wf', [0.0, 0.3, 0.8, 1.0])
def test_matches_doc_formulas(wf):
    rng = np.random.default_rng(0)
    aligned = rng.uniform(-900, 1400, (400, 2))
    warped = rng.uniform(-0.5, 511.5, (400, 2))
    ours_f = tanh_warp_forward(aligned, (512, 512), wf)
    ours_i = tanh_warp_inverse(warped, (512, 512), wf)
    ref_f = [[doc_forward(x, 512, wf), doc_forward(y, 512, wf)] for x, y in aligned]
    ref_i = [[doc_inverse(x, 512, wf), doc_inverse(y, 512, wf)] for x, y in warped]
    np.testing.assert_allclose(ours_f, ref_f, atol=1e-9)
    np.testing.assert_allclose(doc_forward_array(aligned, 512, wf), ref_f, atol=1e-9)
    np.testing.assert_allclose(ours_i, ref_i, atol=1e-9)


def test_non_square_canvas_normalises_each_axis():
    pts = np.array([[10., 10.], [300., 50.]])
    out = tanh_warp_forward(pts, (128, 512), 0.8)  # (H, W): x by 512, y by 128
    ref = [[doc_forward(x, 512, .8), doc_forward(y, 128, .8)] for x, y in pts]
    np.testing.assert_allclose(out, ref, atol=1e-9)


def test_forward_inverse_identity_inside_the_face():
    """≤ 0.01 px (in fact ~1e-10) over the whole aligned face region and more, at wf 0.8."""
    ys, xs = np.mgrid[-500:1050:7.3, -500:1050:7.3]
    aligned = np.stack([xs, ys], -1).reshape(-1, 2)  # everything inside [-573.5, 1085.5]
    back = tanh_warp_inverse(tanh_warp_forward(aligned, 512, 0.8), 512, 0.8)
    assert np.abs(back - aligned).max() <= 0.01
    # and the other way round for warped points away from the clipped border band
    warped = np.stack(np.meshgrid(np.linspace(0.21, 511.79, 97), np.linspace(0.21, 511.79, 89)),
                      -1).reshape(-1, 2)
    again = tanh_warp_forward(tanh_warp_inverse(warped, 512, 0.8), 512, 0.8)
    assert np.abs(again - warped).max() <= 0.01


def test_border_tolerance_from_the_clip():
    """Documented tolerance: the 0.999 clip moves warped points by at most
    0.001 * wf * size / 2 = 0.2048 px (512, wf 0.8), only within that distance of the edges;
    aligned points beyond [-573.5, 1085.5] come back clamped to that range."""
    bound = (1 - TANH_CLIP) * 0.8 * 512 / 2
    assert bound == pytest.approx(0.2048)
    warped = np.array([[0., 511.9], [0.1, 512.], [1.0, 511.5]])
    again = tanh_warp_forward(tanh_warp_inverse(warped, 512, 0.8), 512, 0.8)
    err = np.abs(again - warped)
    assert err.max() <= bound + 1e-9
    assert err[0, 0] == pytest.approx(bound, abs=1e-6)  # warped px 0 is the worst pixel centre
    assert err[2].max() < 1e-9  # pixel centres 1 .. 511 are outside the band
    # beyond the canvas edge the point is clamped to the band edge
    np.testing.assert_allclose(tanh_warp_forward(tanh_warp_inverse([[-0.5, 600.]], 512, .8),
                                                 512, .8), [[bound, 512 - bound]], atol=1e-6)
    far = tanh_warp_inverse(tanh_warp_forward([[-3000., 5000.]], 512, 0.8), 512, 0.8)
    np.testing.assert_allclose(far, [[-573.48, 1085.48]], atol=0.01)


def test_points_through_matrix_and_back():
    matrix = random_affine_matrix(np.random.default_rng(3)) @ face_align_matrix(
        np.array([[100., 120.], [160., 118.], [130., 150.], [108., 180.], [155., 178.]]))
    pts = np.random.default_rng(1).uniform(0, 300, (50, 2))
    warped = transform_points(pts, matrix, 512, 0.8)
    ref = [[doc_forward(p[0], 512, .8), doc_forward(p[1], 512, .8)]
           for p in apply_matrix(pts, matrix)]
    np.testing.assert_allclose(warped, ref, atol=1e-9)
    np.testing.assert_allclose(inverse_transform_points(warped, matrix, 512, 0.8), pts, atol=0.01)
    # wf = 0 is the plain matrix
    np.testing.assert_allclose(transform_points(pts, matrix, 512, 0.0), apply_matrix(pts, matrix))
    with pytest.raises(ValueError):
        tanh_warp_forward(pts, 512, 1.5)


# ---- images ------------------------------------------------------------------------------------
def test_warp_image_samples_the_inverse_map():
    """A linear ramp image shows exactly which original position each warped pixel sampled."""
    h, w = 200, 240
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = np.stack([xs, ys, np.ones_like(xs)], -1)  # bilinear reproduces linear functions
    matrix = random_affine_matrix(np.random.default_rng(5)) @ face_align_matrix(
        np.array([[90., 90.], [150., 92.], [120., 125.], [97., 150.], [145., 150.]]))
    warped = warp_image(ramp, matrix, (128, 128), 0.8)
    assert warped.shape == (128, 128, 3) and warped.dtype == np.float32
    map_x, map_y = warp_map(matrix, (128, 128), 0.8)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(warped[..., 0][inside], map_x[inside], atol=1e-3)
    np.testing.assert_allclose(warped[..., 1][inside], map_y[inside], atol=1e-3)
    outside = (map_x < -1) | (map_x > w) | (map_y < -1) | (map_y > h)
    assert outside.any() and (warped[outside] == 0).all()  # border constant 0
    # the map is the doc's inverse followed by M^-1
    grid = np.stack(np.meshgrid(np.arange(128.), np.arange(128.)), -1)[::17, ::13].reshape(-1, 2)
    aligned = [[doc_inverse(x, 128, .8), doc_inverse(y, 128, .8)] for x, y in grid]
    src = apply_matrix(aligned, np.linalg.inv(matrix))
    np.testing.assert_allclose(np.stack([map_x[::17, ::13], map_y[::17, ::13]], -1).reshape(-1, 2),
                               src, atol=1e-3)


def test_label_round_trip_keeps_99_percent():
    """A LaPa-like label warped to 512 at wf 0.8 (nearest) and back (nearest)."""
    agree = []
    # the face upsampled (~2.4x) and downsampled (~0.7x) onto the canvas, as LaPa's sizes vary
    for seed, size in ((0, 256), (1, 768)):
        _, label, landmarks = render_synthetic_face(np.random.default_rng([7, seed]), size)
        matrix = face_align_matrix(landmarks[list(LAPA_ALIGN_INDICES)], (512, 512))
        warped = warp_image(label, matrix, (512, 512), 0.8, 'nearest')
        assert warped.dtype == np.uint8 and set(np.unique(warped)) <= set(np.unique(label))
        back = unwarp_image(warped, matrix, label.shape, 0.8, 'nearest')
        agree.append((back == label).mean())
        # the face itself (skin and parts, not hair/background) too, despite thin brows and lips
        face = (label > 0) & (label < 10)
        assert (back[face] == label[face]).mean() >= 0.99
    assert min(agree) >= 0.99, agree


def test_unwarp_image_matches_cv2_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 64, 5)).astype(np.float32)
    matrix = face_align_matrix(np.array([[30., 40.], [60., 41.], [45., 55.], [33., 70.],
                                         [58., 70.]]), (64, 64))
    ours = unwarp_image(logits, matrix, (90, 80), 0.8)
    np.testing.assert_allclose(ours, cv2_unwarp_reference(logits, matrix, (90, 80), 0.8),
                               atol=1e-4)
    map_x, _ = inverse_warp_map(matrix, (90, 80), 64, 0.8)
    assert map_x.shape == (90, 80)


# ---- logits (torch) ------------------------------------------------------------------------------
def _matrices():
    a = face_align_matrix(np.array([[40., 52.], [78., 50.], [60., 72.], [45., 92.], [75., 91.]]),
                          (128, 128))
    b = random_affine_matrix(np.random.default_rng(2), (128, 128)) @ face_align_matrix(
        np.array([[50., 40.], [82., 47.], [63., 62.], [48., 80.], [75., 85.]]), (128, 128))
    return np.stack([a, b])


@pytest.mark.parametrize('wf', [0.0, 0.8, (0.0, 0.8)])
def test_inverse_warp_logits_equals_cv2_remap(wf):
    """Batched on CPU against cv2.remap (bilinear, border 0) of each sample's logits."""
    torch.manual_seed(0)
    logits = torch.randn(2, 11, 128, 128)
    matrices = _matrices()
    ori_shape = (190, 170)
    out = inverse_warp_logits(logits, matrices, wf, ori_shape)
    assert out.shape == (2, 11, 190, 170) and out.dtype == torch.float32
    wfs = wf if isinstance(wf, tuple) else (wf, wf)
    for i in range(2):
        ref = cv2_unwarp_reference(logits[i].permute(1, 2, 0).numpy(), matrices[i], ori_shape,
                                   wfs[i])
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), ref, atol=1e-4)
        # original pixels that land off the canvas (wf 0 only; wf 0.8 squeezes everything in)
        map_x, map_y = doc_inverse_map(matrices[i], ori_shape, (128, 128), wfs[i])
        off = (map_x < -1) | (map_x > 128) | (map_y < -1) | (map_y > 128)
        assert off.any() == (wfs[i] == 0)
        assert (out[i][:, torch.from_numpy(off)] == 0).all()


def test_inverse_warp_logits_grid_matches_numpy_map():
    matrices = _matrices()
    grid = inverse_warp_grid(torch.as_tensor(matrices), torch.tensor([0.8, 0.3]), (50, 60), 128)
    for i, wf in enumerate((0.8, 0.3)):
        map_x, map_y = inverse_warp_map(matrices[i], (50, 60), 128, wf)
        np.testing.assert_allclose(grid[i, ..., 0].numpy(), map_x, atol=1e-3)
        np.testing.assert_allclose(grid[i, ..., 1].numpy(), map_y, atol=1e-3)


def test_inverse_warp_logits_unbatched_and_dtypes():
    logits = torch.randn(3, 64, 64, dtype=torch.float64)
    matrix = _matrices()[0]
    out = inverse_warp_logits(logits, matrix, 0.8, (40, 30), warped_shape=64)
    assert out.shape == (3, 40, 30) and out.dtype == torch.float64
    batched = inverse_warp_logits(logits[None], torch.as_tensor(matrix)[None], [0.8], (40, 30))
    torch.testing.assert_close(batched[0], out)
    with pytest.raises(ValueError, match='batch'):
        inverse_warp_logits(logits[None].expand(2, -1, -1, -1), _matrices()[:1].repeat(3, 0), 0.,
                            (4, 4))
    with pytest.raises(TypeError):
        inverse_warp_logits(torch.zeros(3, 8, 8, dtype=torch.long), matrix, 0., (4, 4))


def test_low_resolution_logits_are_upsampled_first():
    """112-for-512 style: FaRL upsamples (bilinear, align_corners=False) then remaps; we do the
    same, so passing coarse logits equals upsampling them by hand."""
    torch.manual_seed(1)
    coarse = torch.randn(2, 4, 28, 28)
    matrices = _matrices()
    ours = inverse_warp_logits(coarse, matrices, 0.8, (90, 90), warped_shape=(128, 128))
    fine = F.interpolate(coarse, (128, 128), mode='bilinear', align_corners=False)
    torch.testing.assert_close(ours, inverse_warp_logits(fine, matrices, 0.8, (90, 90)))
    ref = cv2_unwarp_reference(fine[1].permute(1, 2, 0).numpy(), matrices[1], (90, 90), 0.8)
    np.testing.assert_allclose(ours[1].permute(1, 2, 0).numpy(), ref, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_inverse_warp_logits_on_gpu():
    logits = torch.randn(2, 11, 128, 128)
    matrices = _matrices()
    cpu = inverse_warp_logits(logits, matrices, (0.8, 0.0), (120, 100))
    gpu = inverse_warp_logits(logits.cuda(), torch.as_tensor(matrices).cuda(),
                              torch.tensor([0.8, 0.0]).cuda(), (120, 100))
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
