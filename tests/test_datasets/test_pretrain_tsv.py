"""ImageTextTsvDataset / ImageTextFolderDataset: column orders, header detection, errors with
line numbers, empty captions, corrupt images (refetch in training, error in test mode)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceanalysis.datasets.pretrain.tsv import ImageTextFolderDataset, ImageTextTsvDataset


def write_images(root: Path, names, size: int = 32) -> None:
    for index, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.full((size, size + index, 3), 20 * index, np.uint8)  # widths tell them apart
        cv2.imwrite(str(path), img)


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / 'images'
    write_images(root, ['a.jpg', 'b.png', 'sub/c.jpg'])
    return tmp_path


def test_path_text_default_order(images):
    (images / 'list.tsv').write_text('a.jpg\ta face\nb.png\t  another face \n\nsub/c.jpg\tthird\n')
    dataset = ImageTextTsvDataset('list.tsv', data_root=str(images), img_prefix='images')
    assert len(dataset) == 3
    assert dataset.captions == ['a face', 'another face', 'third']
    assert dataset.get_caption(1) == 'another face'
    first = dataset[0]
    assert first['img'].dtype == np.uint8 and first['img'].shape == (32, 32, 3)
    assert first['text'] == 'a face' and first['key'] == 'a.jpg'
    assert first['source'].endswith('list.tsv line 1')
    assert dataset[2]['img'].shape == (32, 34, 3)


def test_tencentpretrain_order_with_header_and_aux_column(images):
    (images / 'corpus.tsv').write_text('text\tpath\ttext_aux\n'
                                       'a face\timages/a.jpg\tsynthetic a\n'
                                       'a png face\timages/b.png\tsynthetic b\n')
    dataset = ImageTextTsvDataset(str(images / 'corpus.tsv'), data_root=str(images))
    assert dataset.captions == ['a face', 'a png face']
    assert dataset[1]['text_aux'] == 'synthetic b' and dataset[1]['key'] == 'images/b.png'
    explicit = ImageTextTsvDataset(str(images / 'corpus.tsv'), data_root=str(images),
                                   columns=('text', 'path', 'text_aux'))
    assert explicit.captions == dataset.captions
    (images / 'no_header.tsv').write_text('a face\timages/a.jpg\n')
    assert ImageTextTsvDataset(str(images / 'no_header.tsv'), data_root=str(images),
                               columns=('text', 'path')).captions == ['a face']
    with pytest.raises(ValueError, match='contradicts'):
        ImageTextTsvDataset(str(images / 'corpus.tsv'), data_root=str(images),
                            columns=('path', 'text', 'text_aux'))


def test_errors_name_file_and_line(images):
    (images / 'bad.tsv').write_text('a.jpg\tok\nb.png\tone\ttoo many\n')
    with pytest.raises(ValueError, match=r'bad.tsv line 2: expected 2 .* found 3'):
        ImageTextTsvDataset('bad.tsv', data_root=str(images), img_prefix='images')
    (images / 'missing.tsv').write_text('a.jpg\tok\n\nnope.jpg\tmissing\n')
    with pytest.raises(FileNotFoundError, match=r'missing.tsv line 3: image .*nope.jpg does not '
                                                r"exist.*columns=\('text', 'path'\)"):
        ImageTextTsvDataset('missing.tsv', data_root=str(images), img_prefix='images')
    unchecked = ImageTextTsvDataset('missing.tsv', data_root=str(images), img_prefix='images',
                                    check_files=False)
    assert len(unchecked) == 2
    with pytest.raises(FileNotFoundError, match='caption list .*absent.tsv'):
        ImageTextTsvDataset('absent.tsv', data_root=str(images))


def test_empty_captions_dropped_counted_and_logged(images, monkeypatch):
    warnings = []
    from faceanalysis.datasets.pretrain import tsv
    monkeypatch.setattr(tsv.MMLogger, 'get_current_instance',
                        lambda: type('Log', (), {'warning': lambda self, m: warnings.append(m)})())
    (images / 'list.tsv').write_text('a.jpg\t\nb.png\tkept\nsub/c.jpg\t   \n')
    dataset = ImageTextTsvDataset('list.tsv', data_root=str(images), img_prefix='images')
    assert dataset.captions == ['kept']
    assert dataset.skip_counts() == dict(empty_text=2, empty_aux_text=0, corrupt_image=0)
    assert len(warnings) == 1
    assert 'dropped 2 sample(s)' in warnings[0] and 'list.tsv line 1' in warnings[0]
    assert 'list.tsv line 3' in warnings[0]


def test_corrupt_image_refetched_in_training_raises_in_test_mode(images):
    (images / 'images' / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    (images / 'list.tsv').write_text('broken.jpg\tbroken\na.jpg\tgood\n')
    train = ImageTextTsvDataset('list.tsv', data_root=str(images), img_prefix='images')
    np.random.seed(0)
    assert train[0]['text'] == 'good'  # BaseDataset drew another index
    assert train.skip_counts()['corrupt_image'] >= 1
    test = ImageTextTsvDataset('list.tsv', data_root=str(images), img_prefix='images',
                               test_mode=True)
    with pytest.raises(ValueError, match=r'list.tsv line 1: image .*broken.jpg cannot be read'):
        test[0]


def test_pipeline_and_registry(images):
    from faceanalysis.registry import DATASETS
    (images / 'list.tsv').write_text('a.jpg\ta face\n')
    dataset = DATASETS.build(dict(
        type='ImageTextTsvDataset', ann_file='list.tsv', data_root=str(images),
        img_prefix='images', pipeline=[dict(type='SquashResize', size=(8, 16))]))
    assert dataset[0]['img'].shape == (8, 16, 3)


def test_folder_with_caption_sidecars(images):
    root = images / 'images'
    (root / 'a.txt').write_text('caption a\n')
    (root / 'b.txt').write_text('   ')
    (root / 'sub' / 'c.txt').write_text('caption c')
    (root / 'sub' / 'c.ofa.txt').write_text('synthetic c')
    dataset = ImageTextFolderDataset(str(root))
    assert [dataset[i]['key'] for i in range(len(dataset))] == ['a.jpg', 'sub/c.jpg']
    assert dataset.captions == ['caption a', 'caption c']
    assert dataset.skip_counts()['empty_text'] == 1
    with pytest.raises(FileNotFoundError, match=r'a.jpg has no caption file .*a.ofa.txt'):
        ImageTextFolderDataset(str(root), aux_caption_suffix='.ofa.txt')
    (root / 'b.txt').unlink()
    with pytest.raises(FileNotFoundError, match=r'b.png has no caption file .*b.txt'):
        ImageTextFolderDataset(str(images), img_prefix='images')
