"""The synthetic LaPa writer: layout, label values, landmarks and determinism."""
import filecmp
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from faceanalysis.datasets import make_synthetic_lapa, prepare_synthetic_data, read_lapa_landmarks
from faceanalysis.datasets.synthetic import LAPA_CLASSES, render_synthetic_face

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COUNTS = {'train': 6, 'val': 2, 'test': 3}

# FaRL's alignment points (farl_protocol.md §3.2) and the label values they must fall on
LEFT_EYE, RIGHT_EYE, NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP = 4, 5, 6, 7, 8, 9
FIVE_POINTS = {104: {LEFT_EYE}, 105: {RIGHT_EYE}, 54: {NOSE},
               84: {UPPER_LIP, INNER_MOUTH, LOWER_LIP}, 90: {UPPER_LIP, INNER_MOUTH, LOWER_LIP}}


@pytest.fixture(scope='module')
def lapa_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic') / 'LaPa')
    assert make_synthetic_lapa(root, num_images=COUNTS, image_size=96, seed=3) == root
    return root


def _names(root, split, sub, suffix):
    return sorted(name[:-len(suffix)] for name in os.listdir(osp.join(root, split, sub))
                  if name.endswith(suffix))


def test_layout_is_lapa_release(lapa_root):
    assert sorted(os.listdir(lapa_root)) == ['test', 'train', 'val']
    for split, count in COUNTS.items():
        assert sorted(os.listdir(osp.join(lapa_root, split))) == ['images', 'labels', 'landmarks']
        images = _names(lapa_root, split, 'images', '.jpg')
        assert len(images) == count
        assert images == _names(lapa_root, split, 'labels', '.png')
        assert images == _names(lapa_root, split, 'landmarks', '.txt')
        for sub in ('images', 'labels', 'landmarks'):  # nothing else in the folders
            assert len(os.listdir(osp.join(lapa_root, split, sub))) == count


def _samples(root):
    for split in COUNTS:
        for name in _names(root, split, 'images', '.jpg'):
            image = cv2.imread(osp.join(root, split, 'images', f'{name}.jpg'), cv2.IMREAD_UNCHANGED)
            label = cv2.imread(osp.join(root, split, 'labels', f'{name}.png'), cv2.IMREAD_UNCHANGED)
            points = read_lapa_landmarks(osp.join(root, split, 'landmarks', f'{name}.txt'))
            yield f'{split}/{name}', image, label, points


def test_images_labels_and_landmarks(lapa_root):
    seen = set()
    for name, image, label, points in _samples(lapa_root):
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8, name
        assert label.shape == (96, 96) and label.dtype == np.uint8, name
        assert label.max() <= 10, name
        seen |= set(np.unique(label).tolist())
        assert points.shape == (106, 2), name
        # every landmark close to the image (the face may leave it a little)
        assert np.all(points > -20) and np.all(points < 96 + 20), name
        for index, allowed in FIVE_POINTS.items():
            x, y = np.round(points[index]).astype(int)
            if 0 <= x < 96 and 0 <= y < 96:
                assert label[y, x] in allowed, (name, index, label[y, x])
        # the drawing follows the labels: away from region borders, skin and hair pixels have
        # one colour each (up to shading and noise), and the colours differ at the borders
        for value in (1, 10):
            inside = cv2.erode((label == value).astype(np.uint8), np.ones((5, 5), np.uint8))
            if inside.sum() > 20:
                assert image[inside > 0].astype(float).std(0).max() < 25, (name, value)
        skin = image[label == 1].astype(float).mean(0)
        eyes = image[(label == 4) | (label == 5)].astype(float).mean(0)
        assert np.abs(skin - eyes).max() > 10, name
    assert seen == set(range(len(LAPA_CLASSES)))


def test_landmark_file_format(lapa_root):
    path = osp.join(lapa_root, 'train', 'landmarks', 'train_00000.txt')
    lines = open(path).read().splitlines()
    assert lines[0] == '106' and len(lines) == 107
    for line in lines[1:]:
        x, y = line.split()
        float(x), float(y)


def test_landmark_regions_over_many_faces():
    """The five alignment points land on their region for every pose/scale drawn."""
    for seed in range(60):
        _, label, points = render_synthetic_face(np.random.default_rng(seed), 128)
        for index, allowed in FIVE_POINTS.items():
            x, y = np.round(points[index]).astype(int)
            assert 0 <= x < 128 and 0 <= y < 128, (seed, index)
            assert label[y, x] in allowed, (seed, index, label[y, x])
        # structure of the 106 points: eyes above the nose tip above the mouth (face frame)
        eye_mid = (points[104] + points[105]) / 2
        mouth_mid = (points[84] + points[90]) / 2
        axis = mouth_mid - eye_mid
        assert np.dot(points[54] - eye_mid, axis) > 0
        assert np.dot(points[54] - mouth_mid, axis) < 0
        chin = points[16]
        assert np.dot(chin - mouth_mid, axis) > 0


def test_deterministic_for_a_seed(tmp_path):
    a = make_synthetic_lapa(str(tmp_path / 'a'), num_images={'train': 3, 'val': 1, 'test': 1},
                            image_size=64, seed=7)
    b = make_synthetic_lapa(str(tmp_path / 'b'), num_images={'train': 3, 'val': 1, 'test': 1},
                            image_size=64, seed=7)
    c = make_synthetic_lapa(str(tmp_path / 'c'), num_images={'train': 3, 'val': 1, 'test': 1},
                            image_size=64, seed=8)
    for split, sub, name in [('train', 'images', 'train_00002.jpg'),
                             ('train', 'labels', 'train_00002.png'),
                             ('test', 'landmarks', 'test_00000.txt')]:
        assert filecmp.cmp(osp.join(a, split, sub, name), osp.join(b, split, sub, name),
                           shallow=False)
        assert not filecmp.cmp(osp.join(a, split, sub, name), osp.join(c, split, sub, name),
                               shallow=False)


def test_prepare_synthetic_data_only_once(tmp_path):
    root = str(tmp_path / 'data' / 'LaPa')
    messages = []
    spec = dict(kind='lapa', root=root, num_images=dict(train=2, val=1, test=1), image_size=64)
    assert prepare_synthetic_data(spec, logger=messages.append)
    assert any('generating' in m for m in messages)
    assert sorted(os.listdir(osp.dirname(root))) == ['LaPa']  # no temporary folder left
    assert not prepare_synthetic_data(spec, logger=messages.append)
    with pytest.raises(KeyError, match='unknown synthetic_data kind'):
        prepare_synthetic_data(dict(kind='nope', root=str(tmp_path / 'x')))


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'misc', 'make_synthetic_data.py'), 'lapa',
         str(out), '--train', '2', '--val', '1', '--test', '1', '--size', '64', '--seed', '1'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(os.listdir(out / 'train' / 'images')) == 2
    assert len(os.listdir(out / 'test' / 'labels')) == 1
