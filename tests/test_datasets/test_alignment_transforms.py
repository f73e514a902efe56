"""Face-alignment transforms: box crop matrix, warped landmarks, occlusion, noise, flip.

farl_protocol.md §3.2 (crop + face scale), §3.4 (inverse mapping), §5.3 (augmentation).
"""
from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.datasets.transforms import (ALIGNMENT_WARP_META_KEYS, FaceBoxCropMatrix,
                                              NoiseFusion, RandomFaceAffine, RandomFaceFlip,
                                              RandomOcclusion, TanhWarp)
from faceanalysis.geometry import (apply_matrix, inverse_transform_points, similarity_params,
                                   transform_points, warp_image)

CANVAS = (512, 512)


def _sample(box=(40.0, 30.0, 140.0, 130.0), num_points=68, seed=0, image_shape=(160, 180)):
    rng = np.random.default_rng(seed)
    x1, y1, x2, y2 = box
    pts = np.stack([rng.uniform(x1, x2, num_points), rng.uniform(y1, y2, num_points)], -1)
    return dict(img=rng.uniform(0, 255, (*image_shape, 3)).astype(np.uint8),
                face_box=np.array([box], dtype=np.float32),
                bbox=np.array([box], dtype=np.float32),
                keypoints=pts[None].astype(np.float32),
                flip_indices=list(range(num_points))[::-1],
                img_path='face.jpg')


# ---------------------------------------------------------------------------------- crop matrix
def test_face_box_crop_matrix_maps_box_to_canvas():
    box = (40.0, 30.0, 140.0, 130.0)  # 100 x 100
    results = FaceBoxCropMatrix(CANVAS, face_scale=1.0)(_sample(box))
    matrix = results['align_matrix']
    assert matrix.shape == (3, 3) and matrix.dtype == np.float64
    # box edges -> canvas edges (-0.5, 511.5); centre -> (255.5, 255.5)
    corners = apply_matrix([[40.0, 30.0], [140.0, 130.0], [90.0, 80.0]], matrix)
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [511.5, 511.5], [255.5, 255.5]],
                               atol=1e-9)

    # face scale 0.8: the box fills 80% of the canvas, about its centre (FaRL's scale_mu)
    matrix = FaceBoxCropMatrix(CANVAS, face_scale=0.8)(_sample(box))['align_matrix']
    edges = apply_matrix([[40.0, 30.0], [140.0, 130.0], [90.0, 80.0]], matrix)
    np.testing.assert_allclose(edges[2], [255.5, 255.5], atol=1e-9)
    np.testing.assert_allclose(edges[1] - edges[0], [0.8 * 512] * 2, atol=1e-9)


def test_face_box_crop_matrix_anisotropic_box_and_errors():
    box = (10.0, 20.0, 50.0, 100.0)  # 40 wide, 80 high (AFLW boxes need not be square)
    matrix = FaceBoxCropMatrix((64, 64), face_scale=1.0)(_sample(box))['align_matrix']
    assert matrix[0, 0] == pytest.approx(64 / 40) and matrix[1, 1] == pytest.approx(64 / 80)

    sample = _sample()
    del sample['face_box']  # mmpose's inference_topdown only provides 'bbox'
    np.testing.assert_allclose(
        FaceBoxCropMatrix()(dict(sample))['align_matrix'],
        FaceBoxCropMatrix(box_key='bbox')(dict(sample))['align_matrix'])
    del sample['bbox']
    with pytest.raises(KeyError, match='face box'):
        FaceBoxCropMatrix()(sample)
    with pytest.raises(ValueError, match='not finite'):
        FaceBoxCropMatrix()(dict(_sample(), face_box=np.array([[0, np.nan, 10, 10]])))
    with pytest.raises(ValueError, match='one face'):
        FaceBoxCropMatrix()(dict(_sample(), face_box=np.zeros((2, 4))))
    with pytest.raises(ValueError, match='x2 > x1'):
        FaceBoxCropMatrix()(dict(_sample(), face_box=np.array([[10, 10, 10, 20]])))
    with pytest.raises(ValueError, match='face_scale'):
        FaceBoxCropMatrix(face_scale=0)


# ---------------------------------------------------------------------------------- keypoints
def test_tanh_warp_transforms_keypoints_like_the_image():
    """``transformed_keypoints`` = transform_points(keypoints); the image agrees (a blob)."""
    h, w = 120, 140
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    centre = np.array([61.3, 47.8])
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 3.0 ** 2))
    results = dict(img=np.repeat(blob[..., None], 3, 2).astype(np.float32),
                   face_box=np.array([[20.0, 10.0, 110.0, 100.0]]),
                   keypoints=np.array([[centre, [5.0, 7.0]]], dtype=np.float32))
    results = FaceBoxCropMatrix((256, 256), face_scale=0.8)(results)
    results = TanhWarp((256, 256), warp_factor=0.0)(results)
    expected = transform_points(results['keypoints'], results['align_matrix'], 256, 0.0)
    np.testing.assert_allclose(results['transformed_keypoints'], expected, atol=1e-4)
    assert results['transformed_keypoints'].dtype == np.float32
    np.testing.assert_array_equal(results['keypoints'][0, 0], centre.astype(np.float32))
    # centroid of the warped blob sits on the transformed point
    warped = results['img'][..., 0].astype(np.float64)
    gy, gx = np.mgrid[0:256, 0:256]
    got = np.array([(gx * warped).sum(), (gy * warped).sum()]) / warped.sum()
    np.testing.assert_allclose(got, results['transformed_keypoints'][0, 0], atol=0.05)

    # a third column (mmpose keypoints with scores) is carried unchanged; wf > 0 supported
    results = dict(img=np.zeros((50, 50, 3), np.uint8), align_matrix=np.eye(3),
                   keypoints=np.array([[[10.0, 20.0, 0.7], [30.0, 40.0, 1.0]]], np.float32))
    results = TanhWarp((50, 50), warp_factor=0.8)(results)
    np.testing.assert_allclose(results['transformed_keypoints'][..., :2],
                               transform_points([[[10.0, 20.0], [30.0, 40.0]]], np.eye(3), 50, 0.8),
                               atol=1e-4)
    np.testing.assert_array_equal(results['transformed_keypoints'][..., 2],
                                  np.float32([[0.7, 1.0]]))
    # no keypoints: nothing added (parsing pipelines)
    assert 'transformed_keypoints' not in TanhWarp((50, 50))(
        dict(img=np.zeros((50, 50, 3), np.uint8), align_matrix=np.eye(3)))


@pytest.mark.parametrize('seed', range(5))
def test_points_to_crop_and_back_within_1e4_px(seed):
    """FaceBoxCropMatrix + RandomFaceAffine (uniform) + TanhWarp keypoints, then the inverse."""
    np.random.seed(seed)
    results = _sample(seed=seed)
    original = results['keypoints'].astype(np.float64).copy()
    for t in (FaceBoxCropMatrix(CANVAS, face_scale=1.0),
              RandomFaceAffine(CANVAS, shift=0.05, rotation=0.174, scale=0.1, scale_mu=0.8,
                               distribution='uniform'),
              TanhWarp(CANVAS, warp_factor=0.0)):
        results = t(results)
    back = inverse_transform_points(results['transformed_keypoints'].astype(np.float64),
                                    results['align_matrix'], CANVAS, 0.0)
    assert np.abs(back - original).max() < 1e-4


def test_random_face_affine_alignment_law_is_uniform():
    """FaRL §5.3: shift U(+-0.05) * 512, rotation U(+-0.174), scale U(0.8 +- 0.1) (loose)."""
    np.random.seed(0)
    t = RandomFaceAffine(CANVAS, shift=0.05, rotation=0.174, scale=0.1, scale_mu=0.8,
                         distribution='uniform')
    draws = [similarity_params(t(dict(align_matrix=np.eye(3)))['align_matrix'], CANVAS)
             for _ in range(4000)]
    rot = np.array([d['rotation'] for d in draws])
    scale = np.array([d['scale'] for d in draws])
    shift = np.array([d['shift'] for d in draws])
    for values, lo, hi in ((rot, -0.174, 0.174), (scale, 0.7, 0.9),
                           (shift[:, 0], -25.6, 25.6), (shift[:, 1], -25.6, 25.6)):
        assert values.min() >= lo - 1e-9 and values.max() <= hi + 1e-9
        assert values.min() < lo + 0.02 * (hi - lo) and values.max() > hi - 0.02 * (hi - lo)
        quarters = np.histogram(values, bins=4, range=(lo, hi))[0] / len(values)
        np.testing.assert_allclose(quarters, 0.25, atol=0.04)  # flat, not bell-shaped
        assert values.std() == pytest.approx((hi - lo) / np.sqrt(12), rel=0.08)


# ---------------------------------------------------------------------------------- occlusion
def test_random_occlusion_always_applied_with_sizes_in_range():
    np.random.seed(1)
    occ = RandomOcclusion()
    s = 512
    min_side = 2 * (int(s / 2 * 0.2) // 2) + 1  # 51 for rh = 0.2
    max_rows = 2 * (int(s / 2 * 0.8) // 2) + 1  # 205
    max_cols = 2 * (int(s / 2 * 1.0) // 2) + 1  # rw <= rh + 0.2 <= 1.0
    unclipped = 0
    for _ in range(200):
        out = occ(dict(img=np.full((s, s, 3), 200.0, np.float32)))
        zero = np.all(out['img'] == 0, axis=2)
        assert zero.any(), 'occlusion must always be applied'
        rows, cols = np.nonzero(zero.any(1))[0], np.nonzero(zero.any(0))[0]
        # one solid rectangle, the reported one
        assert zero.sum() == len(rows) * len(cols)
        x0, y0, x1, y1 = out['occlusion_box']
        assert (rows[0], rows[-1], cols[0], cols[-1]) == (y0, y1, x0, x1)
        assert len(rows) <= max_rows and len(cols) <= max_cols
        if 0 < y0 and y1 < s - 1:
            unclipped += 1
            assert len(rows) % 2 == 1 and len(rows) >= min_side
        if 0 < x0 and x1 < s - 1:
            assert len(cols) % 2 == 1  # width may be tiny: rw = rh - 0.2 can be ~0
    assert unclipped > 50
    # dtype kept, the input array is not modified
    img = np.full((64, 64, 3), 7, np.uint8)
    out = occ(dict(img=img))
    assert out['img'].dtype == np.uint8 and (img == 7).all()
    with pytest.raises(ValueError):
        RandomOcclusion(h_min=0.9, h_max=0.2)


def test_noise_fusion_probability_and_range():
    np.random.seed(2)
    nf = NoiseFusion(prob=0.5, max_alpha=0.5)
    img = np.full((32, 32, 3), 100, np.uint8)
    changed = 0
    for _ in range(400):
        out = nf(dict(img=img))['img']
        assert out.dtype == np.float32
        diff = np.abs(out - 100.0)
        if diff.max() > 0:
            changed += 1
            # (1 - a) * 100 + a * U(0, 255) with a <= 0.5 stays within [50, 177.5]
            assert out.min() >= 50.0 - 1e-3 and out.max() <= 177.5 + 1e-3
    assert 0.42 < changed / 400 < 0.58
    out = NoiseFusion(prob=0.0)(dict(img=img))['img']
    assert out.dtype == np.float32 and (out == 100).all()


# ---------------------------------------------------------------------------------- flip
def test_random_face_flip_keeps_matrix_consistent():
    np.random.seed(3)
    results = _sample(num_points=6)
    results['flip_indices'] = [1, 0, 2, 4, 3, 5]
    original_img = results['img'].astype(np.float32)
    for t in (FaceBoxCropMatrix((96, 96), face_scale=0.8), TanhWarp((96, 96), warp_factor=0.0)):
        results = t(results)
    before = {k: np.array(results[k]) for k in ('img', 'transformed_keypoints')}
    flipped = RandomFaceFlip(prob=1.0)(dict(results))
    assert flipped['flip'] is True and flipped['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(flipped['img'], before['img'][:, ::-1])
    # the flipped canvas is the original image warped with the updated matrix
    rewarped = warp_image(original_img, flipped['align_matrix'], (96, 96), 0.0)
    np.testing.assert_allclose(rewarped, flipped['img'], atol=1e-3)
    # point k of the mirrored face is point flip_indices[k]: it maps back onto that landmark
    back = inverse_transform_points(flipped['transformed_keypoints'].astype(np.float64),
                                    flipped['align_matrix'], (96, 96), 0.0)
    np.testing.assert_allclose(back[0], results['keypoints'][0][[1, 0, 2, 4, 3, 5]], atol=1e-4)
    # prob 0: untouched; wf > 0 refused
    same = RandomFaceFlip(prob=0.0)(dict(results))
    assert same['flip'] is False and same['img'] is results['img']
    with pytest.raises(ValueError, match='warp_factor 0'):
        RandomFaceFlip(prob=1.0)(dict(results, warp_factor=0.8))


# ---------------------------------------------------------------------------------- pipeline
@pytest.mark.scope('mmpose')
def test_training_pipeline_packs_warped_landmarks(tmp_path):
    from faceanalysis.datasets import IBUG300WDataset, make_synthetic_300w

    root = make_synthetic_300w(str(tmp_path / '300w'), dict(train=2, common=1, challenging=1),
                               image_size=64)
    size = (96, 96)
    pipeline = [
        dict(type='LoadImage'),
        dict(type='FaceBoxCropMatrix', target_shape=size, face_scale=1.0),
        dict(type='RandomFaceAffine', target_shape=size, shift=0.05, rotation=0.174, scale=0.1,
             scale_mu=0.8, distribution='uniform'),
        dict(type='TanhWarp', warped_shape=size, warp_factor=0.0),
        dict(type='RandomOcclusion'), dict(type='NoiseFusion', prob=0.5),
        dict(type='RandomGray', prob=0.1), dict(type='RandomGamma'), dict(type='RandomBoxBlur'),
        dict(type='RandomFaceFlip', prob=0.5),
        dict(type='PackPoseInputs', meta_keys=ALIGNMENT_WARP_META_KEYS, pack_transformed=True),
    ]
    dataset = IBUG300WDataset(data_root=root, split='train', pipeline=pipeline)
    packed = dataset[0]
    assert tuple(packed['inputs'].shape) == (3, 96, 96)
    sample = packed['data_samples']
    for key in ('align_matrix', 'warp_factor', 'warped_shape', 'align_src_shape', 'gt_keypoints',
                'face_box', 'subset'):
        assert key in sample.metainfo, key
    warped = sample.gt_instances.transformed_keypoints
    assert warped.shape == (1, 68, 2)
    back = inverse_transform_points(warped.astype(np.float64), sample.align_matrix, size, 0.0)
    gt = np.asarray(sample.gt_keypoints, dtype=np.float64)
    if sample.metainfo.get('flip'):
        gt = gt[:, sample.flip_indices]
    assert np.abs(back - gt).max() < 1e-3
