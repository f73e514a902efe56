"""Readers of 300W / WFLW (HRNet CSVs) and AFLW-19 (AFLWinfo_release.mat) on generated fixtures.

Fixtures are written in the real formats: HRNet CSV rows (header, ``image_name, scale, center_w,
center_h, x0, y0, ...``) and a .mat written with ``scipy.io.savemat`` holding ``data``, ``bbox``,
``ra``, ``mask_new`` and ``nameList`` like the CUHK release.
"""
from __future__ import annotations

import functools
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import scipy.io

from faceanalysis.datasets import AFLW19Dataset as AFLW19
from faceanalysis.datasets import IBUG300WDataset as IBUG300W
from faceanalysis.datasets import WFLWCSVDataset as WFLWCSV
from faceanalysis.datasets import (make_synthetic_300w, make_synthetic_aflw19,
                                   make_synthetic_wflw)
from faceanalysis.datasets.alignment import (AFLW19_NAMES, ALIGNMENT_META_KEYS, WFLW_SUBSETS,
                                             hrnet_box_xyxy, read_hrnet_csv, write_hrnet_csv)
from faceanalysis.datasets.synthetic import SYNTHETIC_MAKERS, prepare_synthetic_data

# mmengine's serialisation runs gc.collect() (~0.4 s a dataset here): not needed by these tests
IBUG300WDataset = functools.partial(IBUG300W, serialize_data=False)
WFLWCSVDataset = functools.partial(WFLWCSV, serialize_data=False)
AFLW19Dataset = functools.partial(AFLW19, serialize_data=False)

SIZE = 64  # image side of the synthetic fixtures
COUNTS_300W = dict(train=5, common=3, challenging=2)
COUNTS_WFLW = dict(train=4, test=5)
COUNTS_AFLW = dict(train=6, test=5)
# hand-made fixtures hold a few faces: the "count differs from the release" warning is expected
# (test_count_differing_from_release_warns checks it; the synthetic sets must not warn at all)
pytestmark = pytest.mark.filterwarnings('ignore:.* the release has:UserWarning')


def _no_warnings(build):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        return build()


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('alignment')
    return dict(
        ibug300w=make_synthetic_300w(str(base / 'IBUG300W'), COUNTS_300W, image_size=SIZE),
        wflw=make_synthetic_wflw(str(base / 'WFLW'), COUNTS_WFLW, image_size=SIZE, seed=1),
        aflw=make_synthetic_aflw19(str(base / 'AFLW-19'), COUNTS_AFLW, image_size=SIZE, seed=2))


def _write_image(path, size=(40, 50)):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size[1], size[0], 3), 127, np.uint8))


def _row(name, scale, cw, ch, points):
    return ','.join([name] + [repr(float(v)) for v in (scale, cw, ch, *np.ravel(points))])


def _hand_300w(root, rows, header=True, csv='face_landmarks_300w_train.csv'):
    """A 300W root with ``rows`` (strings) in ``csv`` and the two test CSVs holding row 0."""
    os.makedirs(root, exist_ok=True)
    lines = (['image_name,scale,center_w,center_h'] if header else []) + rows
    for name in ('face_landmarks_300w_train.csv', 'face_landmarks_300w_valid_common.csv',
                 'face_landmarks_300w_valid_challenge.csv'):
        with open(osp.join(root, name), 'w') as f:
            f.write('\n'.join(lines if name == csv else lines[:2]) + '\n')
    return str(root)


POINTS68 = np.stack([10.0 + np.arange(68), 20.0 + 0.5 * np.arange(68)], axis=1)


# ------------------------------------------------------------------------------------------------
# 300W
# ------------------------------------------------------------------------------------------------
def test_300w_counts_and_sample_contract(roots):
    sizes = {}
    for split in ('train', 'common', 'challenging', 'full'):
        ds = _no_warnings(lambda: IBUG300WDataset(roots['ibug300w'], split))
        sizes[split] = len(ds)
    assert sizes == dict(COUNTS_300W, full=COUNTS_300W['common'] + COUNTS_300W['challenging'])

    ds = IBUG300WDataset(roots['ibug300w'], 'full')
    assert [ds[i]['subset'] for i in range(len(ds))] == [('common', )] * 3 + [('challenging', )] * 2
    assert IBUG300WDataset(roots['ibug300w'], 'challenging')[0]['subset'] == ('challenging', )
    assert IBUG300WDataset(roots['ibug300w'], 'train')[0]['subset'] == ()
    sample = ds[0]
    assert sample['keypoints'].shape == (1, 68, 2) and sample['keypoints'].dtype == np.float32
    assert sample['keypoints_visible'].shape == (1, 68)
    assert np.all(sample['keypoints_visible'] == 1)
    assert sample['bbox'].shape == (1, 4) and sample['bbox'].dtype == np.float32
    np.testing.assert_array_equal(sample['face_box'], sample['bbox'])
    np.testing.assert_array_equal(sample['gt_keypoints'], sample['keypoints'])
    assert sample['bbox_score'].shape == (1, )
    assert sample['split'] == 'full' and sample['id'] == 0 and sample['img_id'] == 0
    assert sample['dataset_name'] == '300w' and len(sample['flip_indices']) == 68
    assert sample['flip_indices'][36] == 45 and osp.isfile(sample['img_path'])
    # the synthetic faces lie in the image, inside their box, left eye corner left of the right one
    kpt = ds[1]['keypoints'][0]
    assert kpt.min() >= 0 and kpt.max() <= SIZE - 1
    x1, y1, x2, y2 = ds[1]['bbox'][0]
    assert x1 <= kpt[:, 0].min() and kpt[:, 0].max() <= x2
    assert y1 <= kpt[:, 1].min() and kpt[:, 1].max() <= y2
    assert kpt[36, 0] < kpt[45, 0]
    meta = ds.metainfo
    assert meta['num_keypoints'] == 68 and meta['norm_indices']['inter_ocular'] == ([36], [45])


def test_300w_offset_and_box_arithmetic(tmp_path):
    """FaRL: landmarks and centre -2 px; box = centre +- 100 * scale (square of side 200 s)."""
    _write_image(tmp_path / 'afw' / 'face.jpg')
    root = _hand_300w(tmp_path, [_row('afw/face.jpg', 1.5, 102.0, 52.0, POINTS68)])
    sample = IBUG300WDataset(root, 'train')[0]
    np.testing.assert_allclose(sample['keypoints'][0], POINTS68 - 2.0, atol=1e-5)
    # FaRL's box (y1, x1, y2, x2) = [ch - 100 s, cw - 100 s, ch + 100 s, cw + 100 s], ch/cw - 2
    np.testing.assert_allclose(sample['bbox'][0], [100 - 150, 50 - 150, 100 + 150, 50 + 150])
    np.testing.assert_allclose(hrnet_box_xyxy(1.5, 100.0, 50.0), [-50, -100, 250, 200])
    assert sample['sample_name'] == 'afw_face' and sample['ann_index'] == 2

    # WFLW: the same row format, no offset
    wroot = tmp_path / 'wflw'
    _write_image(wroot / 'WFLW_images' / '0--Parade' / 'f.jpg')
    points = np.stack([np.arange(98.0), np.arange(98.0) + 3], axis=1)
    with open(wroot / 'face_landmarks_wflw_train.csv', 'w') as f:
        f.write('image_name,scale,center_w,center_h\n'
                + _row('0--Parade/f.jpg', 0.5, 30.0, 40.0, points) + '\n')
    sample = WFLWCSVDataset(str(wroot), 'train')[0]
    np.testing.assert_allclose(sample['keypoints'][0], points)
    np.testing.assert_allclose(sample['bbox'][0], [-20, -10, 80, 90])
    assert sample['sample_name'] == '0--Parade.f_48.500_51.500'  # FaRL's name


def test_300w_image_092_quirk(roots, tmp_path):
    # the release's file has a space; the CSV does not
    ds = IBUG300WDataset(roots['ibug300w'], 'challenging')
    assert ds[0]['img_path'] == osp.join(roots['ibug300w'], 'ibug', 'image_092 _01.jpg')
    assert ds[0]['sample_name'] == 'ibug_image_092 _01'
    with open(ds[0]['ann_file']) as f:
        assert 'ibug/image_092_01.jpg,' in f.read()

    # a copy renamed to the CSV's spelling is accepted
    _write_image(tmp_path / 'ibug' / 'image_092_01.jpg')
    root = _hand_300w(tmp_path, [_row('ibug/image_092_01.jpg', 1.0, 20, 20, POINTS68)])
    assert IBUG300WDataset(root, 'train')[0]['img_path'].endswith('ibug/image_092_01.jpg')
    # neither: the error names the release's file and the CSV line
    os.remove(tmp_path / 'ibug' / 'image_092_01.jpg')
    with pytest.raises(FileNotFoundError, match=r'face_landmarks_300w_train\.csv, line 2 '
                       r'\(ibug/image_092_01\.jpg\): image .*image_092 _01\.jpg does not exist'):
        IBUG300WDataset(root, 'train')


def test_hrnet_csv_header_blank_and_comment_lines(tmp_path):
    path = str(tmp_path / 'a.csv')
    write_hrnet_csv(path, [('x/a.jpg', 1.0, 5.0, 6.0, POINTS68)], 68)
    with open(path) as f:
        assert f.readline().startswith('image_name,scale,center_w,center_h,original_0_x,')
    with open(path, 'a') as f:
        f.write('\n# a comment\n' + _row('x/b.jpg', 2.0, 1.0, 2.0, POINTS68 + 1) + '\r\n')
    rows = read_hrnet_csv(path, 68)
    assert [(r.image_name, r.line) for r in rows] == [('x/a.jpg', 2), ('x/b.jpg', 5)]
    np.testing.assert_allclose(rows[1].landmarks, POINTS68 + 1)
    # no header: every line is a face, with a warning (HRNet/FaRL would drop the first one)
    with open(path, 'w') as f:
        f.write(_row('x/a.jpg', 1.0, 5.0, 6.0, POINTS68) + '\n')
    with pytest.warns(UserWarning, match='no header row'):
        assert len(read_hrnet_csv(path, 68)) == 1


# ------------------------------------------------------------------------------------------------
# WFLW
# ------------------------------------------------------------------------------------------------
def test_wflw_counts_and_subset_tags(roots):
    root = roots['wflw']
    train = _no_warnings(lambda: WFLWCSVDataset(root, 'train'))
    test = _no_warnings(lambda: WFLWCSVDataset(root, 'test'))
    assert (len(train), len(test)) == (COUNTS_WFLW['train'], COUNTS_WFLW['test'])
    tags = [test[i]['subset'] for i in range(len(test))]
    assert all(tags) and all(set(t) <= set(WFLW_SUBSETS) for t in tags)
    assert train[0]['subset'] == ()
    for subset in WFLW_SUBSETS:
        sub = WFLWCSVDataset(root, f'test_{subset}')
        with open(osp.join(root, f'face_landmarks_wflw_test_{subset}.csv')) as f:
            assert len(sub) == len(f.read().strip().splitlines()) - 1 >= 1
        assert sum(subset in t for t in tags) == len(sub)
        assert all(sub[i]['subset'] == (subset, ) for i in range(len(sub)))
        names = {sub[i]['img_path'] for i in range(len(sub))}
        assert names == {test[i]['img_path'] for i in range(len(test)) if subset in tags[i]}
    sample = test[0]
    assert sample['keypoints'].shape == (1, 98, 2) and sample['dataset_name'] == 'wflw'
    assert sample['img_path'].startswith(osp.join(root, 'WFLW_images') + os.sep)
    assert sample['flip_indices'][60] == 72 and sample['flip_indices'][96] == 97
    kpt = sample['keypoints'][0]
    assert kpt[60, 0] < kpt[72, 0]


# ------------------------------------------------------------------------------------------------
# AFLW-19
# ------------------------------------------------------------------------------------------------
def _write_aflw(root, n, ra, mask, names=None, drop=(), **override):
    rng = np.random.default_rng(0)
    pts = rng.uniform(10, 30, (n, 2, 19))
    names = names or [f'{(0, 2, 3)[i % 3]}/image{i:05d}.jpg' for i in range(n)]
    for name in names:
        _write_image(osp.join(root, 'data', 'flickr', name))
    cells = np.empty((n, 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = name
    bbox = np.stack([np.full(n, 5.0), np.full(n, 35.0), np.full(n, 2.0), np.full(n, 38.0)], 1)
    bbox += np.arange(n)[:, None]
    fields = dict(data=pts.reshape(n, 38), bbox=bbox, ra=np.asarray(ra, float).reshape(1, n),
                  mask_new=np.asarray(mask, float), nameList=cells)
    fields.update(override)
    for key in drop:
        fields.pop(key)
    scipy.io.savemat(osp.join(root, 'AFLWinfo_release.mat'), fields)
    return str(root), pts, bbox


def test_aflw_split_by_ra_and_frontal_by_mask(tmp_path):
    ra = [3, 1, 6, 2, 5, 4]  # 1-based permutation, as in the release
    mask = np.ones((6, 19))
    mask[3, 7] = 0  # face 3 (test) has a hidden point: not frontal
    mask[0, 0] = 0  # face 0 (train)
    root, pts, bbox = _write_aflw(tmp_path, 6, ra, mask)
    train = AFLW19Dataset(root, 'train', num_train=4)
    test = AFLW19Dataset(root, 'test', num_train=4)
    frontal = AFLW19Dataset(root, 'test_frontal', num_train=4)
    assert [s['ann_index'] for s in train] == [2, 0, 5, 1]  # (ra - 1)[:4]
    assert [s['ann_index'] for s in test] == [4, 3]  # (ra - 1)[4:]
    assert [s['ann_index'] for s in frontal] == [4]  # all 19 visible
    assert [s['subset'] for s in test] == [('frontal', ), ()]
    assert [s['subset'] for s in frontal] == [('frontal', )]
    assert [s['split'] for s in frontal] == ['test_frontal']
    face = test[1]
    np.testing.assert_allclose(face['keypoints'][0], pts[3].T, rtol=1e-6)  # (2, 19) -> (19, 2)
    left, right, top, bottom = bbox[3]
    np.testing.assert_allclose(face['bbox'][0], [left, top, right, bottom])
    np.testing.assert_array_equal(face['face_box'], face['bbox'])
    assert np.all(face['keypoints_visible'] == 1)  # all 19 points are scored, as FaRL
    assert face['visibility'][0, 7] == 0 and face['visibility'].sum() == 18
    assert face['img_path'] == osp.join(root, 'data', 'flickr', '0/image00003.jpg')
    assert face['sample_name'] == '1' and face['dataset_name'] == 'aflw'
    assert AFLW19.METAINFO['keypoint_info'][6]['name'] == AFLW19_NAMES[6]
    with pytest.raises(ValueError, match=r'AFLWinfo_release\.mat holds 6 faces; num_train=20000 '
                       'leaves 0 test faces'):
        AFLW19Dataset(root, 'test')  # the release's 20,000


def test_aflw_synthetic_counts(roots):
    root, n_train = roots['aflw'], COUNTS_AFLW['train']
    sizes = {split: len(_no_warnings(lambda: AFLW19Dataset(root, split, num_train=n_train)))
             for split in AFLW19.SPLITS}
    assert sizes == dict(train=6, test=5, test_frontal=3)  # even test positions are frontal
    info = scipy.io.loadmat(osp.join(root, 'AFLWinfo_release.mat'))
    assert sorted(k for k in info if not k.startswith('__')) == \
        ['bbox', 'data', 'mask_new', 'nameList', 'ra']
    names = [s[0][0] for s in info['nameList']]  # FaRL's way of reading it
    assert all(osp.isfile(osp.join(root, 'data', 'flickr', n)) for n in names)
    kpt = AFLW19Dataset(root, 'train', num_train=n_train)[0]['keypoints'][0]
    assert kpt[6, 0] < kpt[11, 0] and kpt[18, 1] > kpt[16, 1]  # eye corners; chin under mouth


# ------------------------------------------------------------------------------------------------
# bad input: clear errors naming the file
# ------------------------------------------------------------------------------------------------
def test_wrong_number_of_coordinates(tmp_path):
    _write_image(tmp_path / 'afw' / 'face.jpg')
    good = _row('afw/face.jpg', 1.0, 20, 20, POINTS68)
    root = _hand_300w(tmp_path, [good, good.rsplit(',', 2)[0]])  # row 2 lost one point
    with pytest.raises(ValueError, match=r'face_landmarks_300w_train\.csv, line 3 '
                       r'\(afw/face\.jpg\): 134 coordinates .* expected 136 \(68 points'):
        IBUG300WDataset(root, 'train')
    wroot = tmp_path / 'wflw'
    os.makedirs(wroot)
    with open(wroot / 'face_landmarks_wflw_train.csv', 'w') as f:
        f.write('h,h,h,h\n' + _row('a.jpg', 1.0, 20, 20, POINTS68) + '\n')
    with pytest.raises(ValueError, match=r'face_landmarks_wflw_train\.csv, line 2 \(a\.jpg\): '
                       r'136 coordinates .* expected 196 \(98 points'):
        WFLWCSVDataset(str(wroot), 'train')


def test_missing_image(tmp_path):
    root = _hand_300w(tmp_path, [_row('helen/trainset/gone.jpg', 1.0, 20, 20, POINTS68)])
    with pytest.raises(FileNotFoundError, match=r'face_landmarks_300w_train\.csv, line 2 .*image '
                       r'.*helen/trainset/gone\.jpg does not exist'):
        IBUG300WDataset(root, 'train')
    aroot = tmp_path / 'aflw'
    mat_root, _, _ = _write_aflw(aroot, 3, [1, 2, 3], np.ones((3, 19)))
    os.remove(aroot / 'data' / 'flickr' / '2' / 'image00001.jpg')
    with pytest.raises(FileNotFoundError, match=r'AFLWinfo_release\.mat, face 1 .*image '
                       r'.*data/flickr/2/image00001\.jpg does not exist'):
        AFLW19Dataset(mat_root, 'train', num_train=2)


@pytest.mark.parametrize('field', ['scale', 'center_w', 'landmark'])
def test_nan_in_box_or_landmarks(tmp_path, field):
    _write_image(tmp_path / 'afw' / 'face.jpg')
    values = dict(scale=1.0, center_w=20.0, center_h=20.0)
    points = POINTS68.copy()
    if field == 'landmark':
        points[5, 1] = np.nan
    else:
        values[field] = np.nan
    root = _hand_300w(tmp_path, [_row('afw/face.jpg', *values.values(), points)])
    what = r'landmark\(s\) \[5\]' if field == 'landmark' else 'NaN or infinite value in the box'
    with pytest.raises(ValueError, match=rf'face_landmarks_300w_train\.csv, line 2 '
                       rf'\(afw/face\.jpg\): {what}'):
        IBUG300WDataset(root, 'train')


def test_nan_in_aflw_box(tmp_path):
    bbox = np.tile([5.0, 35.0, 2.0, 38.0], (3, 1))
    bbox[2, 1] = np.nan
    root, _, _ = _write_aflw(tmp_path, 3, [3, 1, 2], np.ones((3, 19)), bbox=bbox)
    with pytest.raises(ValueError, match=r'AFLWinfo_release\.mat, face 2 .*face box .*NaN'):
        AFLW19Dataset(root, 'train', num_train=2)


def test_unknown_subset_lists_the_valid_ones(roots):
    with pytest.raises(ValueError, match=r"IBUG300WDataset split must be one of \('train', "
                       r"'common', 'challenging', 'full'\), got 'valid'"):
        IBUG300WDataset(roots['ibug300w'], 'valid')
    with pytest.raises(ValueError, match=r"WFLWCSVDataset split must be one of .*'test_blur'\), "
                       "got 'test_pose'"):
        WFLWCSVDataset(roots['wflw'], 'test_pose')
    with pytest.raises(ValueError, match=r"AFLW19Dataset split must be one of \('train', 'test', "
                       r"'test_frontal'\), got 'frontal'"):
        AFLW19Dataset(roots['aflw'], 'frontal')


def test_missing_annotation_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'300W annotation file .*'
                       r'face_landmarks_300w_valid_challenge\.csv does not exist'):
        IBUG300WDataset(str(tmp_path), 'challenging')
    with pytest.raises(FileNotFoundError, match=r'AFLWinfo_release\.mat does not exist'):
        AFLW19Dataset(str(tmp_path), 'test')
    with pytest.raises(FileNotFoundError, match=r'WFLW root .*missing does not exist'):
        WFLWCSVDataset(str(tmp_path / 'missing'), 'train')


def test_aflw_mat_without_expected_fields(tmp_path):
    root, _, _ = _write_aflw(tmp_path, 3, [1, 2, 3], np.ones((3, 19)), drop=('ra', 'mask_new'))
    with pytest.raises(ValueError, match=r"AFLWinfo_release\.mat lacks the field\(s\) \['ra', "
                       r"'mask_new'\]; it holds \['bbox', 'data', 'nameList'\]"):
        AFLW19Dataset(root, 'train', num_train=2)
    root, _, _ = _write_aflw(tmp_path, 3, [1, 2, 2], np.ones((3, 19)))
    with pytest.raises(ValueError, match=r'AFLWinfo_release\.mat: field ra must be a 1-based '
                       'permutation'):
        AFLW19Dataset(root, 'train', num_train=2)
    root, _, _ = _write_aflw(tmp_path, 3, [1, 2, 3], np.zeros((3, 19)))
    with pytest.raises(ValueError, match=r'AFLW-19 test_frontal .* has no faces \(no test face of '
                       r'.*AFLWinfo_release\.mat has all 19 points visible'):
        AFLW19Dataset(root, 'test_frontal', num_train=2)


def test_count_differing_from_release_warns(tmp_path):
    _write_image(tmp_path / 'afw' / 'face.jpg')
    root = _hand_300w(tmp_path, [_row('afw/face.jpg', 1.0, 20, 20, POINTS68)])
    with pytest.warns(UserWarning, match='300W train .* has 1 faces; the release has 3148'):
        IBUG300WDataset(root, 'train')


# ------------------------------------------------------------------------------------------------
# synthetic makers and mmpose's pipeline / metric
# ------------------------------------------------------------------------------------------------
def test_synthetic_makers_registered(tmp_path):
    assert SYNTHETIC_MAKERS['300w'] is make_synthetic_300w
    assert SYNTHETIC_MAKERS['wflw'] is make_synthetic_wflw
    assert SYNTHETIC_MAKERS['aflw19'] is make_synthetic_aflw19
    root = str(tmp_path / 'w')
    # the generic keys of tools/misc/make_synthetic_data.py: val ignored, test = every test split
    assert prepare_synthetic_data(dict(kind='300w', root=root, image_size=48, quirk=False,
                                       num_images=dict(train=1, val=4, test=1)),
                                  logger=lambda msg: None)
    assert [len(IBUG300WDataset(root, s)) for s in ('train', 'common', 'challenging')] == [1, 1, 1]
    assert not osp.exists(osp.join(root, 'ibug', 'image_092 _01.jpg'))
    with pytest.raises(ValueError, match="unknown WFLW split 'valid'"):
        make_synthetic_wflw(str(tmp_path / 'x'), dict(valid=1))


@pytest.mark.scope('mmpose')
@pytest.mark.parametrize('kind', ['ibug300w', 'wflw', 'aflw'])
def test_sample_flows_through_mmpose_pipeline(roots, kind):
    from mmpose.evaluation import NME
    from mmpose.registry import DATASETS

    cfg, num, norm = dict(  # config, K, what mmpose's NME normalises with
        ibug300w=(dict(type='IBUG300WDataset', split='common'), 68, (36, 45)),
        wflw=(dict(type='WFLWCSVDataset', split='test'), 98, (60, 72)),
        aflw=(dict(type='AFLW19Dataset', split='test', num_train=6), 19, 'bbox'),
    )[kind]
    pipeline = [dict(type='LoadImage'), dict(type='GetBBoxCenterScale'),
                dict(type='TopdownAffine', input_size=(64, 64)),
                dict(type='PackPoseInputs', meta_keys=ALIGNMENT_META_KEYS)]
    ds = DATASETS.build(dict(cfg, data_root=roots[kind], pipeline=pipeline, test_mode=True,
                             serialize_data=False))  # built from mmpose's registry
    assert ds.metainfo['num_keypoints'] == num
    out = ds[0]
    assert tuple(out['inputs'].shape) == (3, 64, 64)
    sample, raw = out['data_samples'], ds.get_data_info(0)
    np.testing.assert_allclose(sample.gt_instances.keypoints, raw['keypoints'])  # original px
    np.testing.assert_allclose(sample.gt_instances.bboxes, raw['bbox'])
    assert sample.metainfo['flip_indices'] == raw['flip_indices']
    assert sample.metainfo['img_path'] == raw['img_path'] and sample.metainfo['id'] == 0
    # what the face-alignment metric reads, in original pixels whatever the crop did
    np.testing.assert_array_equal(sample.metainfo['face_box'], raw['bbox'])
    np.testing.assert_array_equal(sample.metainfo['gt_keypoints'], raw['keypoints'])
    assert sample.metainfo['subset'] == raw['subset'] and sample.metainfo['split'] == cfg['split']
    # the same steps by hand, to see the crop before packing: the GT box x 1.25 holds the face
    results = ds.get_data_info(0)
    for transform in ds.pipeline.transforms[:-1]:
        results = transform(results)
    crop = results['transformed_keypoints'][0]
    assert ((crop >= 0) & (crop <= 63)).all()

    # mmpose's NME takes our samples and metainfo unchanged (indices from dataset_name)
    metric = NME(norm_mode='use_norm_item', norm_item='bbox_size') if norm == 'bbox' \
        else NME(norm_mode='keypoint_distance')
    metric.dataset_meta = ds.metainfo
    packed = sample.to_dict()
    packed['pred_instances'] = dict(keypoints=raw['keypoints'] + np.float32([3.0, 0.0]))
    metric.process([], [packed])
    kpt, box = raw['keypoints'][0], raw['bbox'][0]
    expected = 3.0 / (np.max(box[2:] - box[:2]) if norm == 'bbox'
                      else np.linalg.norm(kpt[norm[0]] - kpt[norm[1]]))
    assert metric.compute_metrics(metric.results)['NME'] == pytest.approx(expected, rel=1e-4)


def test_flip_indices_match_mmpose_metainfo():
    import mmpose
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    folder = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_', 'datasets')
    for cls, name in ((IBUG300W, '300w'), (WFLWCSV, 'wflw'), (AFLW19, 'aflw')):
        path = osp.join(folder, f'{name}.py')
        if not osp.isfile(path):
            pytest.skip(f'mmpose metainfo {path} not installed')
        ours = cls._load_metainfo()
        ref = parse_pose_metainfo(dict(from_file=path))
        assert ours['flip_indices'] == ref['flip_indices'], name
        assert ours['dataset_name'] == ref['dataset_name'] == name
