"""CelebAMaskHQDataset, its label merging in FaRL's order, the label converter, synthetic data."""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch

from faceanalysis.datasets import (CELEBAMASKHQ_PARTS, CELEBAMASKHQ_SPLIT_SIZES,
                                   CelebAMaskHQDataset, build_celebamaskhq_label,
                                   make_synthetic_celebamaskhq, prepare_synthetic_data)
from faceanalysis.datasets.celebamaskhq import (CELEBAMASKHQ_CLASSES, CELEBAMASKHQ_LABEL_DIR,
                                                G_MASK_PARTS, celebamaskhq_part_path,
                                                read_celebamaskhq_split)
from faceanalysis.datasets.lapa import farl_subsample_indices
from faceanalysis.datasets.transforms import PARSING_META_KEYS
from faceanalysis.registry import DATASETS
from tools.dataset_converters import celebamaskhq as converter

# pipelines are built by name in mmseg's scope, as in a parsing config
pytestmark = pytest.mark.scope('mmseg')

COUNTS = {'train': 5, 'val': 2, 'test': 3}
SIZE = 96  # image side; the masks are SIZE // 2, as the release's 1024 / 512
LOADING = [dict(type='LoadImageFromFile'), dict(type='LoadCelebAMaskHQAnnotations')]


@pytest.fixture(scope='module')
def cm_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('celebm') / 'CelebAMask-HQ')
    return make_synthetic_celebamaskhq(root, COUNTS, image_size=SIZE, seed=2)


@pytest.fixture
def root_copy(cm_root, tmp_path):
    return shutil.copytree(cm_root, str(tmp_path / 'CelebAMask-HQ'))


def _lines(path):
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def _ids(dataset):
    return [dataset.get_data_info(i)['celeba_hq_id'] for i in range(len(dataset))]


# ------------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------------
def test_split_from_hand_written_lists(tmp_path):
    (tmp_path / 'CelebA-HQ-to-CelebA-mapping.txt').write_text(
        'idx orig_idx orig_file\n0 9 000010.jpg\n1 162780 162781.jpg\n\n'
        '4001 199999 200000.jpg\n7 0 000001.jpg\n')
    (tmp_path / 'list_eval_partition.txt').write_text(
        '000001.jpg 0\n000005.jpg 0\n000010.jpg 0\n162781.jpg 1\n170000.jpg 1\n200000.jpg 2\n')
    root = str(tmp_path)
    # partition-file order (FaRL's), CelebA files without an HQ image skipped
    assert read_celebamaskhq_split(root, 'train') == [(7, '000001.jpg'), (0, '000010.jpg')]
    assert read_celebamaskhq_split(root, 'val') == [(1, '162781.jpg')]
    assert read_celebamaskhq_split(root, 'test') == [(4001, '200000.jpg')]


def test_split_counts_follow_the_list_files(cm_root):
    partition = _lines(osp.join(cm_root, 'list_eval_partition.txt'))
    mapping = {row[2]: int(row[0]) for row in _lines(
        osp.join(cm_root, 'CelebA-HQ-to-CelebA-mapping.txt'))[1:]}
    folders = set()
    for group, (split, count) in enumerate(COUNTS.items()):
        dataset = CelebAMaskHQDataset(cm_root, split=split)
        assert len(dataset) == count
        expected = [mapping[f] for f, g in partition if int(g) == group and f in mapping]
        assert _ids(dataset) == expected
        for index in range(count):
            info = dataset.get_data_info(index)
            hq_id = info['celeba_hq_id']
            folders.add(hq_id // 2000)
            assert info['img_path'] == osp.join(cm_root, 'CelebA-HQ-img', f'{hq_id}.jpg')
            assert info['seg_map_path'] is None and info['orig_file'] in mapping
            assert info['mask_anno_dir'] == osp.join(cm_root, 'CelebAMask-HQ-mask-anno')
            assert info['reduce_zero_label'] is False and info['seg_fields'] == []
    assert len(folders) > 1  # the <id // 2000> folders are really used
    meta = dataset.metainfo
    assert len(meta['classes']) == 19 and meta['classes'][14] == 'hair'
    assert tuple(meta['swap_pairs']) == ((4, 5), (6, 7), (8, 9))
    assert CELEBAMASKHQ_SPLIT_SIZES == dict(train=24183, val=2993, test=2824)


@pytest.mark.parametrize('name', ['CelebA-HQ-to-CelebA-mapping.txt', 'list_eval_partition.txt'])
def test_missing_list_file_names_it(root_copy, name):
    os.remove(osp.join(root_copy, name))
    with pytest.raises(FileNotFoundError, match=rf'{osp.join(root_copy, name)} does not exist.*'
                       r'DS_DATA\.md'):
        CelebAMaskHQDataset(root_copy, split='train')


def test_malformed_list_line_names_file_and_line(root_copy):
    path = osp.join(root_copy, 'list_eval_partition.txt')
    with open(path, 'a') as f:
        f.write('000007.jpg train\n')
    rows = len(_lines(path))
    with pytest.raises(ValueError, match=rf'{path}:{rows}: expected "<file>.jpg <0\|1\|2>"'):
        CelebAMaskHQDataset(root_copy, split='test')


def test_missing_image_and_mask_folder_names_them(root_copy):
    dataset = CelebAMaskHQDataset(root_copy, split='val')
    image = dataset.get_data_info(1)['img_path']
    os.remove(image)
    with pytest.raises(FileNotFoundError, match='do not exist') as info:
        CelebAMaskHQDataset(root_copy, split='val')
    assert image in str(info.value)
    shutil.rmtree(osp.join(root_copy, 'CelebAMask-HQ-mask-anno'))
    with pytest.raises(FileNotFoundError, match='CelebAMask-HQ-mask-anno does not exist'):
        CelebAMaskHQDataset(root_copy, split='train')


def test_count_differing_from_the_release_warns(tmp_path):
    lines = ['idx orig_idx orig_file'] + [f'{i} {i} {i + 1:06d}.jpg' for i in range(30000)]
    (tmp_path / 'CelebA-HQ-to-CelebA-mapping.txt').write_text('\n'.join(lines) + '\n')
    (tmp_path / 'list_eval_partition.txt').write_text('000001.jpg 0\n000002.jpg 0\n')
    (tmp_path / 'CelebA-HQ-img').mkdir()
    with pytest.warns(UserWarning, match='train split .* has 2 images; the release has 24183'):
        with pytest.raises(FileNotFoundError, match='0.jpg'):
            CelebAMaskHQDataset(str(tmp_path), split='train')


# ------------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------------
# A hand-made 8x8 case: h hair, H hat, s skin, g eyeglasses, e left eye, n neck, c cloth. Masks
# overlap; the r_eye mask is absent (skipped, as FaRL does).
MASKS = {
    'skin': (slice(2, 8), slice(0, 8)), 'hair': (slice(0, 4), slice(0, 8)),
    'l_eye': (slice(4, 5), slice(1, 3)), 'eye_g': (slice(4, 5), slice(0, 4)),
    'neck': (slice(6, 8), slice(3, 5)), 'hat': (slice(0, 2), slice(2, 6)),
    'cloth': (slice(7, 8), slice(0, 8)),
}
LETTER = {'h': 'hair', 'H': 'hat', 's': 'skin', 'g': 'eye_g', 'e': 'l_eye', 'n': 'neck',
          'c': 'cloth'}
FARL_EXPECTED = ['hhHHHHhh', 'hhHHHHhh', 'hhhhhhhh', 'hhhhhhhh',
                 'ggggssss',   # eyeglasses (15) overwrite the eye (8)
                 'ssssssss',
                 'ssssssss',   # skin (2) overwrites the neck (1)
                 'cccccccc']
G_MASK_EXPECTED = ['hhHHHHhh', 'hhHHHHhh', 'hhhhhhhh', 'hhhhhhhh',
                   'geegssss',  # g_mask: l_eye (4) over eye_g (3)
                   'ssssssss',
                   'sssnnsss',  # g_mask: neck (17) over skin (1)
                   'cccccccc']
HAND_ID = 4001  # folder 4001 // 2000 = 2


def _hand_made_root(root):
    """One test image (id 4001) with the masks above; skin saved as RGB, as some release files."""
    os.makedirs(osp.join(root, 'CelebA-HQ-img'))
    cv2.imwrite(osp.join(root, 'CelebA-HQ-img', f'{HAND_ID}.jpg'), np.full((16, 16, 3), 128,
                                                                            np.uint8))
    for part, where in MASKS.items():
        mask = np.zeros((8, 8), np.uint8)
        mask[where] = 255
        if part == 'skin':
            mask = np.stack([mask] * 3, axis=-1)
        path = celebamaskhq_part_path(osp.join(root, 'CelebAMask-HQ-mask-anno'), HAND_ID, part)
        os.makedirs(osp.dirname(path), exist_ok=True)
        cv2.imwrite(path, mask)
    with open(osp.join(root, 'CelebA-HQ-to-CelebA-mapping.txt'), 'w') as f:
        f.write('idx orig_idx orig_file\n4001 199999 200000.jpg\n')
    with open(osp.join(root, 'list_eval_partition.txt'), 'w') as f:
        f.write('200000.jpg 2\n')
    return root


def _names(label, parts):
    names = np.array(['background'] + list(parts))[label]
    inverse = {name: letter for letter, name in LETTER.items()}
    return [''.join(inverse[n] for n in row) for row in names]


def test_overwrite_order_is_farls_not_g_masks(tmp_path):
    root = _hand_made_root(str(tmp_path))
    mask_dir = osp.join(root, 'CelebAMask-HQ-mask-anno')
    assert osp.isfile(osp.join(mask_dir, '2', '04001_hair.png'))
    farl = build_celebamaskhq_label(mask_dir, HAND_ID)
    assert farl.dtype == np.uint8 and farl.shape == (8, 8)
    assert _names(farl, CELEBAMASKHQ_PARTS) == FARL_EXPECTED
    assert farl[0, 0] == 14 and farl[4, 0] == 15 and farl[7, 0] == 3 and farl[6, 3] == 2
    g_mask = build_celebamaskhq_label(mask_dir, HAND_ID, G_MASK_PARTS)
    assert _names(g_mask, G_MASK_PARTS) == G_MASK_EXPECTED
    # through the dataset and its loading transform: the 16x16 image, the 8x8 label
    dataset = CelebAMaskHQDataset(root, split='test', pipeline=LOADING)
    out = dataset[0]
    assert out['img'].shape == (16, 16, 3)
    np.testing.assert_array_equal(out['gt_seg_map'], farl)
    assert CELEBAMASKHQ_CLASSES[farl[4, 0]] == 'eyeglasses'


def test_part_mask_of_the_wrong_size_names_it(root_copy):
    dataset = CelebAMaskHQDataset(root_copy, split='train', label_dir=False, pipeline=LOADING)
    hq_id = dataset.get_data_info(2)['celeba_hq_id']
    path = celebamaskhq_part_path(osp.join(root_copy, 'CelebAMask-HQ-mask-anno'), hq_id, 'nose')
    cv2.imwrite(path, np.zeros((SIZE, SIZE), np.uint8))  # image-sized instead of half
    with pytest.raises(ValueError, match=f'is {SIZE}x{SIZE} .*expected {SIZE // 2}x{SIZE // 2}') \
            as info:
        dataset[2]
    assert path in str(info.value)
    with pytest.raises(ValueError, match='nose.png is'):
        converter.convert(root_copy, str(osp.join(root_copy, 'out')), progress=False)
    with open(path, 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(ValueError, match='cannot be decoded') as info:
        dataset[2]
    assert path in str(info.value)


def test_unreadable_image_names_it(root_copy):
    dataset = CelebAMaskHQDataset(root_copy, split='test', pipeline=LOADING)
    path = dataset.get_data_info(0)['img_path']
    with open(path, 'wb') as f:
        f.write(b'\x00' * 100)
    with pytest.raises(ValueError, match='cannot be decoded') as info:
        dataset[0]
    assert path in str(info.value)


# ------------------------------------------------------------------------------------------------
# converter and cached labels
# ------------------------------------------------------------------------------------------------
def test_converter_output_equals_on_the_fly_labels(root_copy, capsys):
    converter.main([root_copy, '--nproc', '2'])
    assert 'uses it on its own' in capsys.readouterr().out
    out_dir = osp.join(root_copy, CELEBAMASKHQ_LABEL_DIR)
    mapping = _lines(osp.join(root_copy, 'CelebA-HQ-to-CelebA-mapping.txt'))[1:]
    ids = sorted(int(row[0]) for row in mapping)
    assert sorted(os.listdir(out_dir)) == sorted(f'{i}.png' for i in ids)  # nothing else
    mask_dir = osp.join(root_copy, 'CelebAMask-HQ-mask-anno')
    for hq_id in ids:
        cached = cv2.imread(osp.join(out_dir, f'{hq_id}.png'), cv2.IMREAD_UNCHANGED)
        assert cached.dtype == np.uint8 and cached.shape == (SIZE // 2, SIZE // 2)
        np.testing.assert_array_equal(cached, build_celebamaskhq_label(mask_dir, hq_id))

    for split in COUNTS:
        cached = CelebAMaskHQDataset(root_copy, split=split, pipeline=LOADING)  # found on its own
        fly = CelebAMaskHQDataset(root_copy, split=split, label_dir=False, pipeline=LOADING)
        assert _ids(cached) == _ids(fly)
        for index in range(len(fly)):
            assert cached.get_data_info(index)['seg_map_path'] == osp.join(
                out_dir, f'{cached.get_data_info(index)["celeba_hq_id"]}.png')
            np.testing.assert_array_equal(cached[index]['gt_seg_map'], fly[index]['gt_seg_map'])

    # another folder through label_dir; then the cache is all the dataset needs
    converter.main([root_copy, '--out', osp.join(root_copy, 'elsewhere'), '--nproc', '1'])
    shutil.rmtree(out_dir)
    shutil.rmtree(mask_dir)
    elsewhere = CelebAMaskHQDataset(root_copy, split='test', label_dir='elsewhere',
                                    pipeline=LOADING)
    assert elsewhere[0]['gt_seg_map'].shape == (SIZE // 2, SIZE // 2)


def test_cached_label_errors_name_the_file(root_copy):
    converter.convert(root_copy, nproc=1, progress=False)
    out_dir = osp.join(root_copy, CELEBAMASKHQ_LABEL_DIR)
    dataset = CelebAMaskHQDataset(root_copy, split='train', pipeline=LOADING)
    path = dataset.get_data_info(1)['seg_map_path']
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[0, 0] = 19
    cv2.imwrite(path, label)
    with pytest.raises(ValueError, match=r'holds values \[19\] outside the 19 classes 0\.\.18') \
            as info:
        dataset[1]
    assert path in str(info.value)
    os.remove(path)
    with pytest.raises(FileNotFoundError, match='merged label.* missing.*rerun') as info:
        CelebAMaskHQDataset(root_copy, split='train')
    assert path in str(info.value)
    assert len(CelebAMaskHQDataset(root_copy, split='train', label_dir=False)) == 5
    with pytest.raises(FileNotFoundError, match='label_dir .*nope does not exist'):
        CelebAMaskHQDataset(root_copy, split='train', label_dir='nope')
    assert osp.isdir(out_dir)


# ------------------------------------------------------------------------------------------------
# subsampling and the full pipeline
# ------------------------------------------------------------------------------------------------
def test_train_data_ratio(cm_root):
    full = _ids(CelebAMaskHQDataset(cm_root, split='train'))
    kept = _ids(CelebAMaskHQDataset(cm_root, split='train', train_data_ratio=0.4))
    assert kept == [full[i] for i in farl_subsample_indices(5, 0.4)]
    assert len(kept) == 5 and len(set(kept)) == 2
    with pytest.raises(ValueError, match='subsamples the training split'):
        CelebAMaskHQDataset(cm_root, split='test', train_data_ratio=0.4)


@pytest.mark.parametrize('resize', [True, False])
def test_full_pipeline_from_a_config(cm_root, resize):
    half = SIZE // 2
    pipeline = LOADING + ([dict(type='Resize', scale=(half, half), keep_ratio=False)]
                          if resize else []) + [
        dict(type='FaceAlignMatrix', mode='identity', target_shape=(half, half)),
        dict(type='TanhWarp', warped_shape=(half, half), warp_factor=0.0),
        dict(type='PackSegInputs', meta_keys=PARSING_META_KEYS)]
    dataset = DATASETS.build(dict(type='CelebAMaskHQDataset', data_root=cm_root, split='test',
                                  test_mode=True, pipeline=pipeline))
    mask_dir = osp.join(cm_root, 'CelebAMask-HQ-mask-anno')
    for index in range(len(dataset)):
        out = dataset[index]
        assert out['inputs'].shape == (3, half, half) and out['inputs'].dtype == torch.float32
        sample = out['data_samples']
        label = build_celebamaskhq_label(mask_dir, dataset.get_data_info(index)['celeba_hq_id'])
        # identity alignment and warp factor 0: the label comes through unchanged
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), label)
        meta = sample.metainfo
        assert meta['ori_shape'] == (SIZE, SIZE) and meta['warp_factor'] == 0.0
        assert meta['align_src_shape'] == ((half, half) if resize else (SIZE, SIZE))
        expected = np.eye(3) if resize else np.diag([0.5, 0.5, 1.0]) + np.array(
            [[0, 0, -0.25], [0, 0, -0.25], [0, 0, 0]])
        np.testing.assert_allclose(meta['align_matrix'], expected, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# synthetic data
# ------------------------------------------------------------------------------------------------
def test_synthetic_layout_is_the_release(tmp_path):
    root = str(tmp_path / 'synthetic' / 'CelebAMask-HQ')
    assert prepare_synthetic_data(dict(kind='celebamaskhq', root=root,
                                       num_images=dict(train=3, val=1, test=2), image_size=64),
                                  logger=lambda msg: None)
    assert sorted(os.listdir(root)) == ['CelebA-HQ-img', 'CelebA-HQ-to-CelebA-mapping.txt',
                                        'CelebAMask-HQ-mask-anno', 'list_eval_partition.txt']
    mapping = _lines(osp.join(root, 'CelebA-HQ-to-CelebA-mapping.txt'))
    assert mapping[0] == ['idx', 'orig_idx', 'orig_file'] and len(mapping) == 7
    for hq_id, orig_idx, orig_file in mapping[1:]:
        assert orig_file == f'{int(orig_idx) + 1:06d}.jpg'
        image = cv2.imread(osp.join(root, 'CelebA-HQ-img', f'{hq_id}.jpg'))
        assert image.shape == (64, 64, 3)
        folder = osp.join(root, 'CelebAMask-HQ-mask-anno', str(int(hq_id) // 2000))
        masks = [n for n in os.listdir(folder) if n.startswith(f'{int(hq_id):05d}_')]
        assert {'00000_skin.png'.replace('00000', f'{int(hq_id):05d}')} <= set(masks)
        for name in masks:
            mask = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    partition = _lines(osp.join(root, 'list_eval_partition.txt'))
    assert len(partition) > 6  # also CelebA files without an HQ image
    assert [row[0] for row in partition] == sorted(row[0] for row in partition)
    for row in partition:  # each file lies in its partition's CelebA range
        number, group = int(row[0][:-4]), int(row[1])
        assert (1, 162771, 182638)[group] <= number < (162771, 182638, 202600)[group]
    # deterministic
    again = str(tmp_path / 'again')
    make_synthetic_celebamaskhq(again, dict(train=3, val=1, test=2), image_size=64)
    assert _lines(osp.join(again, 'list_eval_partition.txt')) == partition
