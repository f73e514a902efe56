"""Image-only pre-training datasets (MCF): ImageFolderImages and LMDBImages."""
import copy
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch

from faceanalysis.datasets.pretrain.image_folder import ImageFolderImages
from faceanalysis.datasets.pretrain.lmdb_images import LMDBImages
from faceanalysis.datasets.synthetic_face_crops import (write_image_folder, write_lmdb_bytes,
                                                        write_lmdb_images)
from faceanalysis.datasets.synthetic_image_text import encode_jpeg
from faceanalysis.registry import DATASETS

GRAY = (np.arange(40 * 30, dtype=np.uint8).reshape(40, 30) * 7) % 251  # (H, W) = (40, 30)
NOT_AN_IMAGE = b'this is not an image at all'


def _pack(results):
    """A stand-in for PackImageText: the image as a (3, H, W) uint8 tensor, plus the key."""
    img = torch.from_numpy(np.ascontiguousarray(results['img'].transpose(2, 0, 1)))
    return dict(img=img, key=results['key'])


def _check_raw(sample, key=None):
    img = sample['img']
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8
    assert img.ndim == 3 and img.shape[2] == 3 and img.flags['C_CONTIGUOUS']
    assert isinstance(sample['source'], str)
    if key is not None:
        assert sample['key'] == key


# ------------------------------------------------------------------------------------------------
# ImageFolderImages
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'faces'
    write_image_folder(str(root), 4, seed=0, size=48, classes=('b_class', 'a_class'))
    os.makedirs(root / 'a_class' / 'nested')
    cv2.imwrite(str(root / 'a_class' / 'nested' / 'gray.JPG'), GRAY)  # upper-case suffix
    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    cv2.imwrite(str(root / 'b_class' / 'alpha.png'), rgba)
    (root / 'b_class' / 'notes.txt').write_text('not an image')
    (root / 'loose.jpg').write_bytes(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))  # not read
    return root


EXPECTED_KEYS = ['a_class/000001.jpg', 'a_class/000003.jpg', 'a_class/nested/gray.JPG',
                 'b_class/000000.jpg', 'b_class/000002.jpg', 'b_class/alpha.png']


def test_image_folder_lists_and_decodes(folder):
    dataset = ImageFolderImages(str(folder))
    assert len(dataset) == 6
    for index, key in enumerate(EXPECTED_KEYS):
        sample = dataset[index]
        _check_raw(sample, key)
        assert sample['source'] == osp.join(str(folder), *key.split('/'))
    gray = dataset[2]['img']
    assert gray.shape == (40, 30, 3)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert np.abs(gray[..., 0].astype(int) - GRAY).max() <= 8  # JPEG error only
    alpha = dataset[5]['img']
    assert alpha.shape == (20, 24, 3) and (alpha == [255, 0, 0]).all()  # RGB order, alpha dropped
    face = dataset[0]['img']
    assert face.shape == (48, 48, 3)


def test_image_folder_built_from_config_with_pipeline(folder):
    # no default scope needed: the pipeline is built with our registry (mmcv's transforms too)
    dataset = DATASETS.build(dict(
        type='ImageFolderImages', data_root=str(folder), extensions=('jpg', '.png'),
        pipeline=[dict(type='Resize', scale=(32, 32)), dict(type='RandomFlip', prob=0.5),
                  _pack]))
    assert len(dataset) == 6  # jpg also matches .JPG
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=6)))
    assert batch['img'].shape == (6, 3, 32, 32) and batch['img'].dtype == torch.uint8
    assert list(batch['key']) == EXPECTED_KEYS


def test_image_folder_layout_errors(tmp_path):
    flat = tmp_path / 'flat'
    flat.mkdir()
    (flat / 'a.jpg').write_bytes(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(FileNotFoundError, match=r'no class sub-folder.*1 image\(s\) directly'):
        ImageFolderImages(str(flat))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ImageFolderImages(str(tmp_path / 'missing'))
    (tmp_path / 'empty' / 'cls').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='hold no file'):
        ImageFolderImages(str(tmp_path / 'empty'))


def test_image_folder_corrupt_image_skipped_and_counted(folder):
    bad = folder / 'a_class' / 'bad.jpg'
    bad.write_bytes(NOT_AN_IMAGE)
    dataset = ImageFolderImages(str(folder))
    keys = [dataset.get_data_info(i)['key'] for i in range(len(dataset))]
    bad_index = keys.index('a_class/bad.jpg')
    dataset._rand_another = lambda: 0  # BaseDataset's refetch draws at random; fix it
    assert dataset.num_skipped == 0
    sample = dataset[bad_index]  # refetched: another, valid sample
    _check_raw(sample, keys[0])
    assert dataset.num_skipped == 1 and dataset.skip_counts() == {'corrupt_image': 1}
    # counted across DataLoader workers: the count lives in shared memory
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2,
                                         multiprocessing_context='fork')
    assert len([s['key'] for s in loader]) == len(dataset)
    assert dataset.num_skipped == 2
    # an evaluation must not lose images
    test_set = ImageFolderImages(str(folder), test_mode=True)
    with pytest.raises(ValueError, match='bad.jpg'):
        test_set[bad_index]


# ------------------------------------------------------------------------------------------------
# LMDBImages
# ------------------------------------------------------------------------------------------------
def _lmdb_installed() -> bool:
    try:
        import lmdb  # noqa: F401
    except ImportError:
        return False
    return True


# lmdb is optional (requirements/optional.txt): the readers need it, the install hint does not
needs_lmdb = pytest.mark.skipif(not _lmdb_installed(),
                                reason='lmdb is not installed (requirements/optional.txt)')


def test_lmdb_missing_module_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'lmdb', None)  # `import lmdb` raises ImportError
    with pytest.raises(ImportError, match='pip install lmdb'):
        LMDBImages(str(tmp_path / 'faces.lmdb'), str(tmp_path / 'keys.txt'))


@pytest.fixture
def faces_lmdb(tmp_path):
    return write_lmdb_images(str(tmp_path / 'faces.lmdb'), 5, seed=1, size=48)


@needs_lmdb
def test_lmdb_reads_mcf_layout(faces_lmdb, tmp_path):
    lmdb_path, keys_file = faces_lmdb
    dataset = LMDBImages(lmdb_path, keys_file)
    assert len(dataset) == 5
    folder = write_image_folder(str(tmp_path / 'folder'), 5, seed=1, size=48)
    for index in range(5):
        sample = dataset[index]
        _check_raw(sample, f'{index:09d}.jpg')
        assert sample['source'] == lmdb_path
        # the same pixels as the same face written as a file
        expected = cv2.cvtColor(cv2.imread(folder[index]), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(sample['img'], expected)
    # copies and subsets share this process's environment (py-lmdb opens a path only once)
    assert copy.deepcopy(dataset)[1]['key'] == '000000001.jpg'
    assert dataset.get_subset([3])[0]['key'] == '000000003.jpg'
    assert not any('Environment' in type(v).__name__ for v in vars(dataset).values())


@needs_lmdb
def test_lmdb_workers_open_their_own_environment(faces_lmdb):
    dataset = LMDBImages(*faces_lmdb, pipeline=[_pack])
    assert dataset[0]['img'].shape == (3, 48, 48)  # the main process has the env open now
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2,
                                         multiprocessing_context='fork')
    keys = sorted(sample['key'] for sample in loader)
    assert keys == [f'{i:09d}.jpg' for i in range(5)]
    assert dataset[4]['key'] == '000000004.jpg'  # the main process's env still works


@needs_lmdb
@pytest.mark.scope('faceanalysis')
def test_lmdb_grayscale_becomes_rgb_and_corrupt_is_counted(tmp_path):
    entries = [('gray', encode_jpeg(GRAY)), ('broken', NOT_AN_IMAGE),
               ('colour', encode_jpeg(np.full((16, 16, 3), (0, 0, 255), np.uint8)))]
    lmdb_path, keys_file = write_lmdb_bytes(str(tmp_path / 'mixed'), entries,
                                            str(tmp_path / 'mixed.txt'))
    dataset = DATASETS.build(dict(type='LMDBImages', lmdb_path=lmdb_path, keys_file=keys_file))
    gray = dataset[0]['img']
    assert gray.shape == (40, 30, 3) and (gray[..., 0] == gray[..., 2]).all()
    colour = dataset[2]['img']
    assert colour.shape == (16, 16, 3) and colour[..., 2].min() > 240 and colour[..., 0].max() < 15
    assert dataset.num_skipped == 0
    dataset._rand_another = lambda: 2  # BaseDataset's refetch draws at random; fix it
    assert dataset[1]['key'] == 'colour'
    assert dataset.num_skipped == 1


@needs_lmdb
def test_lmdb_errors(tmp_path, faces_lmdb):
    import lmdb
    lmdb_path, keys_file = faces_lmdb
    # length disagrees with the keys file
    entries = [(f'k{i}', encode_jpeg(np.zeros((8, 8, 3), np.uint8))) for i in range(3)]
    wrong, wrong_keys = write_lmdb_bytes(str(tmp_path / 'wrong'), entries,
                                         str(tmp_path / 'wrong.txt'), length=4)
    with pytest.raises(ValueError, match=r'wrong says length=4 .*wrong\.txt lists 3 keys'):
        LMDBImages(wrong, wrong_keys)
    # a listed key that is not in the LMDB: raised when read, naming it
    keys = open(keys_file).read().splitlines()
    listed = tmp_path / 'listed.txt'
    listed.write_text('\n'.join(keys[:4] + ['no_such_face.jpg']) + '\n\n')
    dataset = LMDBImages(lmdb_path, str(listed))  # trailing empty lines are fine
    assert len(dataset) == 5
    with pytest.raises(KeyError, match='no_such_face.jpg'):
        dataset[4]
    # an empty line inside the keys file
    listed.write_text('\n'.join(keys[:2] + [''] + keys[2:]) + '\n')
    with pytest.raises(ValueError, match=r'line\(s\) \[3\] are empty'):
        LMDBImages(lmdb_path, str(listed))
    # no length entry
    env = lmdb.open(str(tmp_path / 'nolength'), map_size=1 << 20)
    env.close()
    with pytest.raises(ValueError, match='no b"length" entry'):
        LMDBImages(str(tmp_path / "nolength"), keys_file)
    with pytest.raises(FileNotFoundError, match='missing.lmdb does not exist'):
        LMDBImages(str(tmp_path / 'missing.lmdb'), keys_file)
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        LMDBImages(lmdb_path, str(tmp_path / 'missing.txt'))
