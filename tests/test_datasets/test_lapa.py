"""LaPaDataset on generated data in LaPa's release layout: reading, every bad input, subsampling."""
import os
import os.path as osp
import random
import shutil
import warnings

import cv2
import numpy as np
import pytest
import torch

from faceanalysis.datasets import LAPA_SPLIT_SIZES, LaPaDataset, make_synthetic_lapa
from faceanalysis.datasets.lapa import farl_subsample_indices, read_lapa_landmark_file
from faceanalysis.datasets.synthetic import LAPA_CLASSES, read_lapa_landmarks
from faceanalysis.datasets.transforms import PARSING_META_KEYS
from faceanalysis.registry import DATASETS, TRANSFORMS

# pipelines are built by name in mmseg's scope, as in a parsing config
pytestmark = pytest.mark.scope('mmseg')

COUNTS = {'train': 6, 'val': 2, 'test': 3}
LOADING = [dict(type='LoadImageFromFile'), dict(type='LoadLaPaAnnotations')]


@pytest.fixture(scope='module')
def lapa_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('lapa') / 'LaPa')
    return make_synthetic_lapa(root, COUNTS, image_size=96, seed=1)


@pytest.fixture
def root_copy(lapa_root, tmp_path):
    """A private copy to break."""
    return shutil.copytree(lapa_root, str(tmp_path / 'LaPa'))


def _path(root, split, sub, index, suffix):
    return osp.join(root, split, sub, f'{split}_{index:05d}{suffix}')


def test_reads_every_split_of_the_release_layout(lapa_root):
    for split, count in COUNTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # synthetic names: no count warning
            dataset = LaPaDataset(lapa_root, split=split)
        assert len(dataset) == count
        for index in range(count):
            info = dataset.get_data_info(index)
            assert info['img_path'] == _path(lapa_root, split, 'images', index, '.jpg')
            assert info['seg_map_path'] == _path(lapa_root, split, 'labels', index, '.png')
            assert info['landmarks'].shape == (106, 2) and info['landmarks'].dtype == np.float32
            np.testing.assert_allclose(
                info['landmarks'],
                read_lapa_landmarks(_path(lapa_root, split, 'landmarks', index, '.txt')),
                atol=1e-4)
            assert info['reduce_zero_label'] is False and info['seg_fields'] == []
    meta = dataset.metainfo
    assert tuple(meta['classes']) == LAPA_CLASSES and len(meta['palette']) == 11
    assert meta['classes'][10] == 'hair' and tuple(meta['swap_pairs']) == ((2, 3), (4, 5))
    assert LAPA_SPLIT_SIZES == dict(train=18176, val=2000, test=2000)


def test_registered_for_mmseg_and_mmpose_configs():
    import mmpose.registry
    import mmseg.registry
    for registry in (DATASETS, mmseg.registry.DATASETS, mmpose.registry.DATASETS):
        assert registry.get('LaPaDataset') is LaPaDataset
    assert mmpose.registry.DATASETS.get('LapaDataset') is not LaPaDataset  # mmpose's landmarks one
    assert mmseg.registry.TRANSFORMS.get('LoadLaPaAnnotations') is TRANSFORMS.get(
        'LoadLaPaAnnotations')


def test_landmark_files_tolerate_any_whitespace(tmp_path):
    points = np.random.default_rng(0).uniform(0, 500, (106, 2)).round(3)
    flat = ' '.join(f'{v:g}' for v in points.ravel())
    lines = '\n'.join(f'{x:g}\t{y:g}  ' for x, y in points)
    for i, text in enumerate([f'106 {flat}', f'106\n{lines}\n\n', f'  106\r\n{lines}\r\n']):
        path = tmp_path / f'{i}.txt'
        path.write_text(text)
        np.testing.assert_allclose(read_lapa_landmark_file(str(path)), points, atol=1e-3)


def test_missing_split_folder_names_it(root_copy):
    shutil.rmtree(osp.join(root_copy, 'test'))
    with pytest.raises(FileNotFoundError, match=r'folder .*LaPa/test does not exist.*DS_DATA\.md'):
        LaPaDataset(root_copy, split='test')
    shutil.rmtree(osp.join(root_copy, 'train', 'landmarks'))
    with pytest.raises(FileNotFoundError, match=r'LaPa/train/landmarks does not exist'):
        LaPaDataset(root_copy, split='train')
    with pytest.raises(FileNotFoundError, match=r'LaPa root .*nowhere does not exist'):
        LaPaDataset(osp.join(root_copy, 'nowhere'), split='train')


def test_image_without_label_names_both_files(root_copy):
    label = _path(root_copy, 'train', 'labels', 2, '.png')
    os.remove(label)
    image = _path(root_copy, 'train', 'images', 2, '.jpg')
    with pytest.raises(FileNotFoundError, match='without a label') as info:
        LaPaDataset(root_copy, split='train')
    assert label in str(info.value) and image in str(info.value)


def test_image_without_landmarks_and_label_without_image(root_copy):
    marks = _path(root_copy, 'val', 'landmarks', 1, '.txt')
    os.remove(marks)
    with pytest.raises(FileNotFoundError, match='without a landmark file') as info:
        LaPaDataset(root_copy, split='val')
    assert marks in str(info.value)
    os.remove(_path(root_copy, 'train', 'images', 4, '.jpg'))
    with pytest.raises(FileNotFoundError, match='label.* without an image') as info:
        LaPaDataset(root_copy, split='train')
    assert _path(root_copy, 'train', 'labels', 4, '.png') in str(info.value)


@pytest.mark.parametrize('content, message', [
    ('68\n' + '1 2\n' * 68, r"starts with '68'.*point count 106"),
    ('106\n' + '1 2\n' * 105, 'has 210 coordinates after the count 106; expected 212'),
    ('106\n' + '1 2\n' * 106 + '3\n', 'has 213 coordinates'),
    ('106\n' + '1 2\n' * 50 + '1 x\n' + '1 2\n' * 55, "holds 'x', which is not a number"),
    ('', 'is empty'),
])
def test_landmark_file_with_wrong_count_names_it(root_copy, content, message):
    path = _path(root_copy, 'test', 'landmarks', 2, '.txt')
    with open(path, 'w') as f:
        f.write(content)
    with pytest.raises(ValueError, match=message) as info:
        LaPaDataset(root_copy, split='test')
    assert path in str(info.value)


def test_label_value_out_of_range_fails_when_loaded(root_copy):
    path = _path(root_copy, 'train', 'labels', 3, '.png')
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[5:9, 5:9] = 11
    label[0, 0] = 200
    cv2.imwrite(path, label)
    dataset = LaPaDataset(root_copy, split='train', pipeline=LOADING)  # lazy: builds fine
    dataset[2]
    message = r'holds values \[11, 200\] outside the 11 classes 0\.\.10'
    with pytest.raises(ValueError, match=message) as info:
        dataset[3]
    assert path in str(info.value)


def test_label_of_another_size_or_colour_names_it(root_copy):
    path = _path(root_copy, 'train', 'labels', 0, '.png')
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, label[:-4])
    dataset = LaPaDataset(root_copy, split='train', pipeline=LOADING)
    with pytest.raises(ValueError, match='is 96x92 .* expected 96x96') as info:
        dataset[0]
    assert path in str(info.value)
    colour = np.stack([label, label, np.zeros_like(label)], axis=-1)
    cv2.imwrite(path, colour)
    with pytest.raises(ValueError, match='3 different channels') as info:
        dataset[0]
    cv2.imwrite(path, np.stack([label] * 3, axis=-1))  # grey saved as RGB: accepted
    np.testing.assert_array_equal(dataset[0]['gt_seg_map'], label)


@pytest.mark.parametrize('content, message', [
    (b'', 'is empty'), (b'not a jpeg at all' * 20, 'cannot be decoded'),
    (b'\xff\xd8\xff\xe0' + b'\x00' * 64, 'cannot be decoded')])
def test_unreadable_image_names_it(root_copy, content, message):
    path = _path(root_copy, 'train', 'images', 1, '.jpg')
    with open(path, 'wb') as f:
        f.write(content)
    dataset = LaPaDataset(root_copy, split='train', pipeline=LOADING)
    with pytest.raises(ValueError, match=message) as info:
        dataset[1]
    assert path in str(info.value)


def test_unreadable_label_names_it(root_copy):
    path = _path(root_copy, 'test', 'labels', 0, '.png')
    with open(path, 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(ValueError, match='cannot be decoded') as info:
        LaPaDataset(root_copy, split='test', pipeline=LOADING)[0]
    assert path in str(info.value)


def test_other_pipeline_errors_carry_the_sample_files(root_copy):
    def boom(results):
        raise RuntimeError('boom')
    dataset = LaPaDataset(root_copy, split='val', pipeline=LOADING + [boom])
    with pytest.raises(RuntimeError, match='boom') as info:
        dataset[1]
    if hasattr(info.value, 'add_note'):  # Python >= 3.11
        image = _path(root_copy, 'val', 'images', 1, '.jpg')
        assert any(image in note for note in info.value.__notes__)


def test_count_differing_from_the_release_warns_on_real_looking_names(root_copy):
    for sub, suffix in (('images', '.jpg'), ('labels', '.png'), ('landmarks', '.txt')):
        folder = osp.join(root_copy, 'val', sub)
        for i in range(COUNTS['val']):
            os.rename(osp.join(folder, f'val_{i:05d}{suffix}'),
                      osp.join(folder, f'{1234567 + i}_{i}{suffix}'))
    with pytest.warns(UserWarning, match=r'val split .* has 2 images; the release has 2000'):
        dataset = LaPaDataset(root_copy, split='val')
    assert osp.basename(dataset.get_data_info(0)['img_path']) == '1234567_0.jpg'


def test_farl_subsampling_matches_blueprint():
    """blueprint's DataSource(random_ratio): Random(123) shuffle, keep int(n r), repeat to n."""
    for num, ratio in ((6, 0.5), (18176, 0.01), (10, 0.33), (7, 1.0)):
        ids = farl_subsample_indices(num, ratio)
        keep = int(num * ratio)
        order = list(range(num))
        random.Random(123).shuffle(order)
        assert len(ids) == num and len(set(ids)) == keep
        assert ids == [order[:keep][i % keep] for i in range(num)]
    assert farl_subsample_indices(18176, 0.01)[:3] == farl_subsample_indices(18176, 0.01)[:3]
    with pytest.raises(ValueError, match='keeps none'):
        farl_subsample_indices(6, 0.1)


def test_train_data_ratio_keeps_a_repeated_fraction(lapa_root):
    full = LaPaDataset(lapa_root, split='train')
    half = LaPaDataset(lapa_root, split='train', train_data_ratio=0.5)
    names = [full.get_data_info(i)['img_path'] for i in range(len(full))]
    kept = [half.get_data_info(i)['img_path'] for i in range(len(half))]
    assert len(kept) == len(names) == 6  # an epoch keeps its length, as in FaRL
    assert kept == [names[i] for i in farl_subsample_indices(6, 0.5)]
    assert len(set(kept)) == 3 and kept[:3] == kept[3:]
    again = LaPaDataset(lapa_root, split='train', train_data_ratio=0.5)
    assert kept == [again.get_data_info(i)['img_path'] for i in range(len(again))]
    with pytest.raises(ValueError, match='subsamples the training split'):
        LaPaDataset(lapa_root, split='test', train_data_ratio=0.5)
    with pytest.raises(ValueError, match=r'in \(0, 1\]'):
        LaPaDataset(lapa_root, split='train', train_data_ratio=0)
    with pytest.raises(ValueError, match='split must be one of'):
        LaPaDataset(lapa_root, split='training')


def test_full_pipeline_from_a_config(lapa_root):
    cfg = dict(type='LaPaDataset', data_root=lapa_root, split='test', test_mode=True,
               pipeline=LOADING + [
                   dict(type='FaceAlignMatrix', mode='landmarks', target_shape=(128, 128)),
                   dict(type='TanhWarp', warped_shape=(128, 128), warp_factor=0.8),
                   dict(type='PackSegInputs', meta_keys=PARSING_META_KEYS)])
    dataset = DATASETS.build(cfg)
    assert len(dataset) == COUNTS['test']
    for index in range(len(dataset)):
        out = dataset[index]
        assert out['inputs'].shape == (3, 128, 128) and out['inputs'].dtype == torch.float32
        sample = out['data_samples']
        gt = sample.gt_sem_seg.data
        assert gt.shape == (1, 128, 128) and int(gt.max()) <= 10
        assert {4, 5, 6} <= set(gt.unique().tolist())  # eyes and nose survive the warp
        meta = sample.metainfo
        assert meta['img_path'] == _path(lapa_root, 'test', 'images', index, '.jpg')
        assert meta['ori_shape'] == (96, 96) and meta['align_src_shape'] == (96, 96)
        assert meta['warp_factor'] == 0.8 and meta['warped_shape'] == (128, 128)
        assert np.asarray(meta['align_matrix']).shape == (3, 3)
        assert meta['reduce_zero_label'] is False
