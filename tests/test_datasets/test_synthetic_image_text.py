"""The toy image-text corpus: formats, determinism, captions that match the drawn content."""
import filecmp
import json
import os
import os.path as osp
import tarfile

import cv2
import numpy as np
import pytest

from faceanalysis.datasets.synthetic import prepare_synthetic_data
from faceanalysis.datasets.synthetic_face_crops import write_image_folder, write_lmdb_images
from faceanalysis.datasets.synthetic_image_text import (AUX_CAPTION_TEMPLATES, BACKGROUNDS,
                                                        CAPTION_TEMPLATES, SHAPE_COLOURS, SHAPES,
                                                        caption_content, draw_image_text_sample,
                                                        make_toy_corpus, write_image_text_shards,
                                                        write_image_text_tsv)

IMG2DATASET_FIELDS = {'key', 'caption', 'url', 'status', 'error_message', 'width', 'height',
                      'original_width', 'original_height', 'exif', 'sha256', 'similarity'}


def _decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _tar_samples(path):
    """{key: {ext: bytes}} of a shard, and the member names in order."""
    samples, names = {}, []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            assert member.isfile()
            names.append(member.name)
            key, ext = member.name.split('.', 1)
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples, names


def _dominant_colour(image: np.ndarray, background: str) -> str:
    """Nearest shape colour to the median of the pixels far from the background colour."""
    distance = np.linalg.norm(image.astype(float) - BACKGROUNDS[background], axis=-1)
    shape_pixels = image[distance > 80]
    assert len(shape_pixels) > 20
    median = np.median(shape_pixels, axis=0)
    return min(SHAPE_COLOURS, key=lambda name: np.linalg.norm(median - SHAPE_COLOURS[name]))


@pytest.fixture(scope='module')
def shards(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy') / 'shards')
    paths = write_image_text_shards(root, num_samples=10, samples_per_shard=4, seed=7,
                                    with_aux=True)
    return root, paths


def test_shards_are_img2dataset_webdataset(shards):
    root, paths = shards
    assert [osp.basename(p) for p in paths] == ['00000.tar', '00001.tar', '00002.tar']
    with open(osp.join(root, 'sizes.json')) as f:
        assert json.load(f) == {'00000.tar': 4, '00001.tar': 4, '00002.tar': 2}
    keys = []
    for path in paths:
        samples, names = _tar_samples(path)
        # members of a sample are consecutive: webdataset groups them by key prefix
        assert names == [f'{k}.{e}' for k in samples for e in ('jpg', 'txt', 'json', 'cap.txt')]
        for key, members in samples.items():
            assert len(key) == 9 and key.isdigit()
            meta = json.loads(members['json'])
            assert IMG2DATASET_FIELDS <= set(meta)
            assert meta['key'] == key and meta['status'] == 'success'
            assert meta['caption'] == members['txt'].decode('utf-8')
            image = _decode(members['jpg'])
            assert image.shape == (meta['height'], meta['width'], 3) == (64, 64, 3)
            # caption and aux caption: different wordings of the drawn content
            attrs = meta['synthetic_attributes']
            content = (attrs['colour'], attrs['shape'])
            caption, aux = members['txt'].decode(), members['cap.txt'].decode()
            assert caption != aux
            assert caption_content(caption) == caption_content(aux) == content
            keys.append(key)
    assert keys == [f'{i:09d}' for i in range(10)]


def test_captions_match_the_pixels():
    for index in range(12):
        sample = draw_image_text_sample(seed=3, index=index)
        attrs = sample['attributes']
        colour, shape = caption_content(sample['caption'])
        assert (colour, shape) == (attrs['colour'], attrs['shape'])
        assert _dominant_colour(sample['image'], attrs['background']) == colour
        if 'background' in sample['caption']:
            assert f'{attrs["background"]} background' in sample['caption']


def test_caption_vocabulary_varies():
    captions = [draw_image_text_sample(0, i)['caption'] for i in range(80)]
    contents = {caption_content(c) for c in captions}
    assert len(contents) > 15  # most of the 6 x 5 contents in 80 draws
    assert {c.split()[0] for c in captions} == {'a', 'an'}  # articles follow the next word
    assert 'a orange' not in ' '.join(captions)
    assert len(set(captions)) > 40
    assert len(CAPTION_TEMPLATES) >= 4 and len(AUX_CAPTION_TEMPLATES) >= 3
    assert len(SHAPE_COLOURS) == 6 and len(SHAPES) == 5
    with pytest.raises(ValueError, match='exactly one'):
        caption_content('a red and blue circle')


def test_same_seed_same_bytes(shards, tmp_path):
    root, paths = shards
    again = write_image_text_shards(str(tmp_path / 'again'), 10, 4, seed=7, with_aux=True)
    for a, b in zip(paths, again):
        assert filecmp.cmp(a, b, shallow=False)
    other = write_image_text_shards(str(tmp_path / 'other'), 4, 4, seed=8)
    assert not filecmp.cmp(paths[0], other[0], shallow=False)
    # the aux member does not change the image or caption of a sample
    same_seed = write_image_text_shards(str(tmp_path / 'plain'), 4, 4, seed=7)
    plain7, _ = _tar_samples(same_seed[0])
    full7, _ = _tar_samples(paths[0])
    for key in plain7:
        assert plain7[key]['jpg'] == full7[key]['jpg']
        assert plain7[key]['txt'] == full7[key]['txt']
        assert 'cap.txt' not in plain7[key]


def test_tsv_matches_shards(shards, tmp_path):
    root, paths = shards
    tsv = write_image_text_tsv(str(tmp_path / 'tsv'), num_samples=4, seed=7, with_aux=True)
    samples, _ = _tar_samples(paths[0])
    with open(tsv, encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert len(lines) == 4
    for line, (key, members) in zip(lines, samples.items()):
        rel_path, caption, aux = line.split('\t')
        assert rel_path == f'images/{key}.jpg'
        assert caption == members['txt'].decode() and aux == members['cap.txt'].decode()
        with open(osp.join(osp.dirname(tsv), rel_path), 'rb') as f:
            assert f.read() == members['jpg']


def test_stale_shards_refused(tmp_path):
    write_image_text_shards(str(tmp_path), 6, 2, seed=0)
    with pytest.raises(FileExistsError, match='00002.tar'):
        write_image_text_shards(str(tmp_path), 2, 2, seed=0)


def test_toy_corpus_disjoint_and_idempotent(tmp_path):
    root = str(tmp_path / 'corpus')
    corpus = make_toy_corpus(root, num_train=12, num_val=6, seed=1, samples_per_shard=5)
    assert corpus['created']
    assert [osp.basename(p) for p in corpus['train_shards']] == [
        '00000.tar', '00001.tar', '00002.tar']
    assert corpus['train_urls'] == osp.join(root, 'train', '{00000..00002}.tar')
    train_images, train_captions = set(), []
    for path in corpus['train_shards']:
        samples, _ = _tar_samples(path)
        train_images |= {s['jpg'] for s in samples.values()}
        train_captions += [s['txt'].decode() for s in samples.values()]
    assert len(train_images) == 12
    with open(corpus['val_tsv'], encoding='utf-8') as f:
        rows = [line.split('\t') for line in f.read().splitlines()]
    assert len(rows) == 6 and all(len(r) == 3 for r in rows)  # with_aux by default
    val_images = set()
    for rel_path, caption, _ in rows:
        with open(osp.join(corpus['val_dir'], rel_path), 'rb') as f:
            val_images.add(f.read())
        caption_content(caption)  # same vocabulary
    assert len(val_images) == 6 and not (val_images & train_images)

    mtime = os.stat(corpus['train_shards'][0]).st_mtime_ns
    again = make_toy_corpus(root, num_train=12, num_val=6, seed=1, samples_per_shard=5)
    assert not again['created']
    assert os.stat(corpus['train_shards'][0]).st_mtime_ns == mtime
    changed = make_toy_corpus(root, num_train=8, num_val=6, seed=1, samples_per_shard=5)
    assert changed['created']
    assert sorted(os.listdir(osp.join(root, 'train'))) == ['00000.tar', '00001.tar',
                                                           'sizes.json']
    with open(osp.join(root, 'toy_corpus.json')) as f:
        assert json.load(f)['num_train'] == 8


def test_face_crop_folder(tmp_path):
    paths = write_image_folder(str(tmp_path / 'folder'), 5, seed=2, size=48,
                               classes=('a', 'b'))
    assert [osp.relpath(p, str(tmp_path / 'folder')) for p in paths] == [
        'a/000000.jpg', 'b/000001.jpg', 'a/000002.jpg', 'b/000003.jpg', 'a/000004.jpg']
    for path in paths:
        assert cv2.imread(path).shape == (48, 48, 3)


def test_face_crop_lmdb(tmp_path):
    lmdb = pytest.importorskip('lmdb')  # optional dependency (requirements/optional.txt)
    paths = write_image_folder(str(tmp_path / 'folder'), 5, seed=2, size=48)
    lmdb_path, keys_file = write_lmdb_images(str(tmp_path / 'faces.lmdb'), 5, seed=2, size=48)
    assert keys_file == str(tmp_path / 'faces.lmdb_keys.txt')
    with open(keys_file) as f:
        keys = f.read().splitlines()
    assert keys == [f'{i:09d}.jpg' for i in range(5)]
    env = lmdb.open(lmdb_path, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            assert txn.get(b'length') == b'5'
            for key, path in zip(keys, paths):  # the same faces as the folder writer
                with open(path, 'rb') as f:
                    assert txn.get(key.encode()) == f.read()
    finally:
        env.close()


def test_prepare_synthetic_data_kinds(tmp_path):
    root = str(tmp_path / 'toy')
    assert prepare_synthetic_data(dict(kind='toy_image_text', root=root, num_train=6, num_val=3,
                                       samples_per_shard=4), logger=lambda msg: None)
    assert sorted(os.listdir(osp.join(root, 'train'))) == ['00000.tar', '00001.tar',
                                                           'sizes.json']
    faces = str(tmp_path / 'faces')
    assert prepare_synthetic_data(dict(kind='face_crops', root=faces, num_images=2,
                                       image_size=32), logger=lambda msg: None)
    assert sorted(os.listdir(osp.join(faces, 'faces'))) == ['000000.jpg', '000001.jpg']
    # the arguments tools/misc/make_synthetic_data.py passes
    from tools.misc.make_synthetic_data import main
    main(['toy_image_text', str(tmp_path / 'tool'), '--train', '5', '--val', '2', '--size', '32'])
    with open(osp.join(str(tmp_path / 'tool'), 'toy_corpus.json')) as f:
        params = json.load(f)
    assert (params['num_train'], params['num_val'], params['image_size']) == (5, 2, 32)


def test_corpus_reads_through_the_pretraining_datasets(tmp_path):
    # the formats are the ones the readers of faceanalysis.datasets.pretrain expect
    from faceanalysis.datasets.pretrain import ImageTextTsvDataset, WebDatasetImageText
    corpus = make_toy_corpus(str(tmp_path), num_train=6, num_val=3, samples_per_shard=4)
    stream = WebDatasetImageText(corpus['train_urls'], aux_text_key='cap.txt', epochs=1,
                                 shuffle_shards=False, shuffle_buffer=0)
    samples = list(stream)
    assert [s['key'] for s in samples] == [f'{i:09d}' for i in range(6)]
    for sample in samples:
        assert sample['img'].shape == (64, 64, 3)
        assert caption_content(sample['text']) == caption_content(sample['text_aux'])
    val = ImageTextTsvDataset(ann_file=corpus['val_tsv'], data_root=corpus['val_dir'])
    assert len(val) == 3
    assert caption_content(val[0]['text']) == caption_content(val[0]['text_aux'])
