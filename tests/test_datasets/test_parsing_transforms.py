"""FaRL parsing transforms in an mmseg pipeline, on synthetic LaPa-format samples."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

from faceanalysis.datasets.synthetic import make_synthetic_lapa, read_lapa_landmarks
from faceanalysis.datasets.transforms import (PARSING_META_KEYS, FaceAlignMatrix,
                                              RandomBoxBlur, RandomFaceAffine, RandomGamma,
                                              RandomGray, TanhWarp)
from faceanalysis.geometry import (LAPA_ALIGN_INDICES, apply_matrix, face_template,
                                   inverse_warp_logits, resize_matrix, similarity_params,
                                   transform_points, warp_image)

LAPA_SWAP = [(2, 3), (4, 5)]  # left/right brows and eyes


@pytest.fixture(scope='module')
def lapa_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('lapa')
    return make_synthetic_lapa(str(root), {'train': 2, 'val': 0, 'test': 0}, image_size=160)


def _sample(root, index=0):
    name = f'train_{index:05d}'
    return dict(img_path=f'{root}/train/images/{name}.jpg',
                seg_map_path=f'{root}/train/labels/{name}.png', reduce_zero_label=False,
                seg_fields=[], landmarks_path=f'{root}/train/landmarks/{name}.txt')


def _inject_landmarks(results):
    """Stand-in for the dataset, which puts LaPa's 106 points into the sample."""
    results['landmarks'] = read_lapa_landmarks(results['landmarks_path'])
    return results


def _loading():
    return [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), _inject_landmarks]


@pytest.mark.scope('mmseg')
def test_training_pipeline_runs_and_carries_the_geometry(lapa_root):
    np.random.seed(0)
    pipeline = Compose(_loading() + [
        dict(type='FaceAlignMatrix', mode='landmarks'),
        dict(type='RandomFaceAffine'),
        dict(type='TanhWarp', warped_shape=(512, 512), warp_factor=0.8),
        dict(type='RandomGray', prob=0.1),
        dict(type='RandomGamma'),
        dict(type='RandomBoxBlur'),
        dict(type='PackSegInputs', meta_keys=PARSING_META_KEYS),
    ])
    for index in range(2):
        out = pipeline(_sample(lapa_root, index))
        inputs, sample = out['inputs'], out['data_samples']
        assert inputs.shape == (3, 512, 512) and inputs.dtype == torch.float32
        assert 0 <= float(inputs.min()) and float(inputs.max()) <= 255
        gt = sample.gt_sem_seg.data
        assert gt.shape == (1, 512, 512)
        assert set(gt.unique().tolist()) <= set(range(11)) and len(gt.unique()) >= 8
        meta = sample.metainfo
        assert np.asarray(meta['align_matrix']).shape == (3, 3)
        assert meta['warp_factor'] == 0.8 and meta['warped_shape'] == (512, 512)
        assert meta['img_shape'] == (512, 512) and meta['ori_shape'] == (160, 160)
        assert meta['align_src_shape'] == (160, 160)


@pytest.mark.scope('mmseg')
def test_warp_puts_the_face_on_the_template(lapa_root):
    """Without the random affine, the 5 landmarks land on FaRL's template and the warped label
    has the eyes there."""
    pipeline = Compose(_loading() + [dict(type='FaceAlignMatrix'),
                                     dict(type='TanhWarp', warp_factor=0.8)])
    results = pipeline(_sample(lapa_root))
    matrix = results['align_matrix']
    five = results['landmarks'][list(LAPA_ALIGN_INDICES)]
    # a least-squares fit of a drawn face: residuals on the aligned canvas are small and
    # balanced (zero mean, the optimal translation)
    residual = apply_matrix(five, matrix) - face_template()
    np.testing.assert_allclose(residual.mean(axis=0), 0, atol=1e-9)
    assert np.sqrt((residual ** 2).sum(1).mean()) < 20
    warped5 = transform_points(five, matrix, (512, 512), 0.8)
    label = results['gt_seg_map']
    for (x, y), cls in zip(np.rint(warped5[:2]).astype(int), (4, 5)):  # left eye, right eye
        assert label[y, x] == cls
    assert label.shape == (512, 512) and label.dtype == np.uint8
    assert results['img'].dtype == np.float32 and results['img'].shape == (512, 512, 3)
    # exactly the geometry functions: label nearest, image bilinear in float
    original = cv2.imread(_sample(lapa_root)['seg_map_path'], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(label, warp_image(original, matrix, 512, 0.8, 'nearest'))
    image = cv2.imread(_sample(lapa_root)['img_path']).astype(np.float32)
    np.testing.assert_allclose(results['img'], warp_image(image, matrix, 512, 0.8), atol=1e-4)


@pytest.mark.scope('mmseg')
def test_test_pipeline_keeps_gt_and_maps_predictions_back(lapa_root):
    """warp_label=False keeps the original GT; a perfect warped prediction (one-hot of the
    training-mode warped label) maps back onto it through the packed metainfo."""
    train = Compose(_loading() + [dict(type='FaceAlignMatrix'),
                                  dict(type='TanhWarp', warp_factor=0.8)])
    test = Compose(_loading() + [
        dict(type='FaceAlignMatrix'),
        dict(type='TanhWarp', warp_factor=0.8, warp_label=False),
        dict(type='PackSegInputs', meta_keys=PARSING_META_KEYS)
    ])
    warped_label = train(_sample(lapa_root))['gt_seg_map']
    packed = test(_sample(lapa_root))
    meta, gt = packed['data_samples'].metainfo, packed['data_samples'].gt_sem_seg.data[0]
    assert gt.shape == (160, 160)
    logits = torch.nn.functional.one_hot(torch.from_numpy(warped_label).long(), 11)
    logits = logits.permute(2, 0, 1).float()
    # a 128x128 head output, as the real head gives 112 for 512
    small = torch.nn.functional.interpolate(logits[None], (128, 128), mode='bilinear',
                                            align_corners=False)[0]
    for pred_logits in (logits, small):
        back = inverse_warp_logits(pred_logits, meta['align_matrix'], meta['warp_factor'],
                                   meta['align_src_shape'], warped_shape=meta['warped_shape'])
        pred = back.argmax(0)
        assert (pred == gt.long()).float().mean() > 0.97


def test_random_face_affine_statistics():
    """N(0, 0.314) rotation, N(1, 0.1) scale, U(+-0.01 * 512) shift; composed on the left."""
    np.random.seed(123)
    base = np.array([[2., 0., 10.], [0., 2., -4.], [0., 0., 1.]])
    transform = RandomFaceAffine()
    draws = []
    for _ in range(4000):
        out = transform(dict(align_matrix=base.copy()))['align_matrix']
        draws.append(similarity_params(out @ np.linalg.inv(base)))
    rot = np.array([d['rotation'] for d in draws])
    scale = np.array([d['scale'] for d in draws])
    shift = np.array([d['shift'] for d in draws])
    assert abs(rot.mean()) < 0.02 and rot.std() == pytest.approx(0.314, abs=0.015)
    assert abs(scale.mean() - 1) < 0.006 and scale.std() == pytest.approx(0.1, abs=0.005)
    assert np.abs(shift).max() <= 5.12 + 1e-6
    np.testing.assert_allclose(shift.std(axis=0), 5.12 / np.sqrt(3), rtol=0.06)
    # the alignment variant: all uniform
    transform = RandomFaceAffine(shift=0.05, rotation=0.174, scale=0.1, scale_mu=0.8,
                                 distribution='uniform', matrix_key='crop_matrix')
    params = [similarity_params(transform(dict(crop_matrix=np.eye(3)))['crop_matrix'])
              for _ in range(500)]
    assert max(abs(p['rotation']) for p in params) <= 0.174
    assert all(0.7 <= p['scale'] <= 0.9 for p in params)
    with pytest.raises(KeyError, match='FaceAlignMatrix'):
        RandomFaceAffine()(dict(img_path='x.jpg'))


@pytest.mark.scope('mmseg')
def test_flip_after_warp_mirrors_and_swaps_labels(lapa_root):
    """mmseg's RandomFlip(swap_seg_labels) works on the warped sample as is."""
    warp = Compose(_loading() + [dict(type='FaceAlignMatrix'), dict(type='TanhWarp')])
    flip = Compose([dict(type='RandomFlip', prob=1.0, swap_seg_labels=LAPA_SWAP)])
    results = warp(_sample(lapa_root))
    img, label = results['img'].copy(), results['gt_seg_map'].copy()
    flipped = flip(results)
    assert flipped['flip'] and flipped['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(flipped['img'], img[:, ::-1])
    swap = np.arange(256, dtype=np.uint8)
    for a, b in LAPA_SWAP:
        swap[a], swap[b] = b, a
    np.testing.assert_array_equal(flipped['gt_seg_map'], swap[label[:, ::-1]])
    # the left eye (4) was on the image left; after the flip the class 4 is on the left again
    xs = np.nonzero(flipped['gt_seg_map'] == 4)[1]
    assert xs.mean() < 256 and (label == 4).sum() == (flipped['gt_seg_map'] == 5).sum()
    # flipping before the warp would misalign the landmarks' matrix: refused
    early = Compose(_loading() + [dict(type='RandomFlip', prob=1.0, swap_seg_labels=LAPA_SWAP),
                                  dict(type='FaceAlignMatrix'), dict(type='TanhWarp')])
    with pytest.raises(ValueError, match='after TanhWarp'):
        early(_sample(lapa_root))


def test_identity_mode_for_celebamask_hq():
    """1024 image + 512 label, identity matrix folded with the 1024 -> 512 resize, wf 0."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (512, 512), dtype=np.uint8)
    results = dict(img=img, gt_seg_map=label, seg_fields=['gt_seg_map'])
    results = FaceAlignMatrix(mode='identity')(results)
    np.testing.assert_allclose(results['align_matrix'], resize_matrix(1024, 512))
    results = TanhWarp(warp_factor=0.0)(results)
    np.testing.assert_array_equal(results['gt_seg_map'], label)  # label frame == canvas
    expected = cv2.resize(img.astype(np.float32), (512, 512), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(results['img'], expected, atol=1e-3)  # FaRL's dataset resize
    assert results['align_src_shape'] == (1024, 1024)
    # an image already at 512: the identity
    same = FaceAlignMatrix(mode='identity')(dict(img=img[:512, :512]))
    np.testing.assert_allclose(same['align_matrix'], np.eye(3), atol=1e-12)


def test_align_matrix_errors():
    with pytest.raises(KeyError, match='landmarks.*a.jpg'):
        FaceAlignMatrix()(dict(img=np.zeros((8, 8, 3)), img_path='a.jpg'))
    with pytest.raises(ValueError, match='106|105'):
        FaceAlignMatrix()(dict(img=np.zeros((8, 8, 3)), landmarks=np.zeros((68, 2))))
    with pytest.raises(ValueError, match='5 alignment points'):
        FaceAlignMatrix(indices=None)(dict(img=np.zeros((8, 8, 3)), landmarks=np.zeros((6, 2))))
    five = face_template() / 4  # 5 points given directly
    out = FaceAlignMatrix(indices=None)(dict(img=np.zeros((8, 8, 3)), landmarks=five))
    np.testing.assert_allclose(out['align_matrix'][:2, :2], 4 * np.eye(2), atol=1e-9)
    with pytest.raises(ValueError):
        FaceAlignMatrix(mode='box')
    with pytest.raises(ValueError):
        TanhWarp(warp_factor=2)


def test_random_gray():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = RandomGray(prob=1.0)(dict(img=img.copy()))['img']
    assert out.dtype == np.float32
    expected = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], expected, atol=0.51)  # uint8 cv2 rounds
    rgb = RandomGray(prob=1.0, channel_order='rgb')(dict(img=img.astype(np.float32)))['img']
    np.testing.assert_allclose(rgb[..., 0], 0.299 * img[..., 0] + 0.587 * img[..., 1] +
                               0.114 * img[..., 2], atol=1e-3)
    np.testing.assert_array_equal(RandomGray(prob=0.0)(dict(img=img))['img'], img)
    np.random.seed(0)
    hits = sum(np.ptp(RandomGray()(dict(img=img))['img'], axis=2).max() == 0 for _ in range(2000))
    assert 150 < hits < 250  # p = 0.1


def test_random_gamma():
    img = np.linspace(0, 255, 48, dtype=np.float32).reshape(4, 4, 3)
    for gamma in (0.5, 1.0, 2.0):
        out = RandomGamma(gammas=(gamma, ))(dict(img=img.copy()))['img']
        np.testing.assert_allclose(out, 255 * (img / 255) ** gamma, rtol=1e-5, atol=1e-4)
    # clipped to [0, 255] first (a blur or warp can overshoot in other pipelines)
    over = RandomGamma(gammas=(1.0, ))(dict(img=np.array([[[-3., 300., 7.]]])))['img']
    np.testing.assert_allclose(over, [[[0., 255., 7.]]])
    np.random.seed(1)
    seen = [RandomGamma()(dict(img=img.copy()))['img'][1, 1, 1] for _ in range(600)]
    values, counts = np.unique(np.round(seen, 3), return_counts=True)
    assert len(values) == 3 and counts.min() > 160  # sqrt / identity / square, 1/3 each


def test_random_box_blur():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (512, 8, 3)).astype(np.float32)  # S = max(H, W) = 512
    np.random.seed(0)
    blurred = 0
    for _ in range(600):
        out = RandomBoxBlur()(dict(img=img))['img']
        if not np.array_equal(out, img):
            blurred += 1
            assert any(np.allclose(out, cv2.blur(img, (k, k)), atol=1e-4) for k in (2, 3, 4, 5))
    assert 0.55 < blurred / 600 < 0.67  # P(int(512 U(0, 0.01)) > 1) = 0.609
    out = RandomBoxBlur(max_ratio=0.0)(dict(img=img.astype(np.uint8)))['img']
    assert out.dtype == np.float32


@pytest.mark.parametrize('scope', ['mmseg', 'mmpose'])
def test_registered_in_task_scopes(default_scope, scope):
    from mmengine.registry import TRANSFORMS as ROOT  # noqa: F401
    default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['TRANSFORMS']).TRANSFORMS
    for name, cls in (('FaceAlignMatrix', FaceAlignMatrix), ('RandomFaceAffine', RandomFaceAffine),
                      ('TanhWarp', TanhWarp), ('RandomGray', RandomGray),
                      ('RandomGamma', RandomGamma), ('RandomBoxBlur', RandomBoxBlur)):
        assert isinstance(registry.build(dict(type=name)), cls)
