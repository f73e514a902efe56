"""AFLW-19 from ``AFLWinfo_release.mat`` (CUHK "compositional" annotation) and the AFLW images.

Layout (DS_DATA.md; farl_protocol.md §3.2, §6)::

    data_root/AFLWinfo_release.mat
    data_root/data/flickr/{0,2,3}/<name>.jpg

Fields of the .mat that are read (N = 24,386 faces in the release)::

    data       (N, 38)  x1..x19, y1..y19 of each face
    bbox       (N, 4)   left, right, top, bottom (the GT box; may be non-square)
    ra         (1, N)   a 1-based random permutation of the faces
    mask_new   (N, 19)  1 where a point is visible
    nameList   (N, 1)   cell array of image names relative to data/flickr/ ('<0,2,3>/<file>.jpg')

Splits as FaRL (``farl/datasets/aflw.py``): ``train`` = ``(ra - 1)[:20000]`` (20,000 faces),
``test`` = ``(ra - 1)[20000:]`` (4,386), ``test_frontal`` = the test faces whose 19 points are all
visible (``mask_new == 1``; 1,314 faces: this is not the 1,165-image AFLW-Frontal list of
LAB/HRNet). Faces keep the permutation's order.

All 19 points are annotated and scored (FaRL's NME ignores visibility), so ``keypoints_visible``
is all ones; the .mat's visibility travels as ``visibility`` (1, 19) float32. Box-normalised
NME (FaRL's ``NME_diag``, ``NME_box``) uses ``face_box``.

Points: 0-5 brows (image left to right: outer, middle, inner, inner, middle, outer), 6-11 eyes
(outer corner, centre, inner corner, inner corner, centre, outer corner), 12-14 nose (left, tip,
right), 15-17 mouth (left corner, centre, right corner), 18 chin. Inter-ocular ids 6/11,
inter-pupil 7/10 (farl_protocol.md §4.3). Flip pairs are mmpose's ``aflw`` ones.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, List

import numpy as np

from faceanalysis.registry import DATASETS

from .base import DOC, FaceLandmarkDataset, landmark_metainfo

__all__ = ['AFLW19Dataset', 'AFLW19_SPLIT_SIZES', 'AFLW19_FLIP_PAIRS', 'AFLW19_MAT_FIELDS',
           'AFLW19_NAMES', 'read_aflw19_mat', 'AFLW19_MAT_FILE', 'AFLW19_IMAGE_DIR']

AFLW19_NUM_POINTS = 19
AFLW19_MAT_FILE = 'AFLWinfo_release.mat'
AFLW19_IMAGE_DIR = osp.join('data', 'flickr')
AFLW19_MAT_FIELDS = ('data', 'bbox', 'ra', 'mask_new', 'nameList')
#: FaRL's split: the first 20,000 faces of the permutation train, the rest test.
AFLW19_NUM_TRAIN = 20000
AFLW19_SPLIT_SIZES = dict(train=20000, test=4386, test_frontal=1314)
AFLW19_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17))
AFLW19_NAMES = ('left_brow_outer', 'left_brow_middle', 'left_brow_inner', 'right_brow_inner',
                'right_brow_middle', 'right_brow_outer', 'left_eye_outer', 'left_eye_center',
                'left_eye_inner', 'right_eye_inner', 'right_eye_center', 'right_eye_outer',
                'nose_left', 'nose_tip', 'nose_right', 'mouth_left', 'mouth_center',
                'mouth_right', 'chin')


def _name(entry: Any) -> str:
    """A ``nameList`` cell as loaded by scipy (nested 1-element arrays) -> str."""
    value = entry
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f'expected one name per cell, got {value!r}')
        value = value.reshape(-1)[0]
    return str(value)


def read_aflw19_mat(path: str) -> dict:
    """Load and check ``AFLWinfo_release.mat``; errors name the file.

    Returns:
        ``dict(data=(N, 38) float64, bbox=(N, 4) float64, mask=(N, 19) float64,
        names=[N str], ra=(N,) int64 0-based permutation)``.
    """
    import scipy.io
    if not osp.isfile(path):
        raise FileNotFoundError(f'AFLW-19 annotation file {path} does not exist; expected '
                                f'AFLWinfo_release.mat there ({DOC})')
    try:
        info = scipy.io.loadmat(path)
    except Exception as err:
        raise ValueError(f'AFLW-19 annotation file {path} cannot be read as a MATLAB file: '
                         f'{err}') from err
    fields = [k for k in info if not k.startswith('__')]
    missing = [k for k in AFLW19_MAT_FIELDS if k not in info]
    if missing:
        raise ValueError(f'AFLW-19 annotation file {path} lacks the field(s) {missing}; it holds '
                         f'{sorted(fields)}, expected {list(AFLW19_MAT_FIELDS)} as in '
                         'AFLWinfo_release.mat')
    data = np.asarray(info['data'], dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 2 * AFLW19_NUM_POINTS:
        raise ValueError(f'{path}: field data has shape {data.shape}; expected (N, 38): '
                         'x1..x19, y1..y19 per face')
    n = len(data)
    bbox = np.asarray(info['bbox'], dtype=np.float64)
    mask = np.asarray(info['mask_new'], dtype=np.float64)
    for key, value, cols in (('bbox', bbox, 4), ('mask_new', mask, AFLW19_NUM_POINTS)):
        if value.shape != (n, cols):
            raise ValueError(f'{path}: field {key} has shape {value.shape}; expected ({n}, {cols})'
                             f' for the {n} faces of data')
    name_cells = np.asarray(info['nameList'], dtype=object).reshape(-1)
    if len(name_cells) != n:
        raise ValueError(f'{path}: field nameList holds {len(name_cells)} names for {n} faces')
    try:
        names = [_name(cell) for cell in name_cells]
    except ValueError as err:
        raise ValueError(f'{path}: field nameList: {err}') from None
    ra = np.asarray(info['ra'], dtype=np.float64).reshape(-1)
    if ra.size != n or not np.all(np.isfinite(ra)) or not np.array_equal(
            np.sort(ra), np.arange(1, n + 1)):
        raise ValueError(f'{path}: field ra must be a 1-based permutation of the {n} faces '
                         f'(size {ra.size}, values {ra.min() if ra.size else None}..'
                         f'{ra.max() if ra.size else None})')
    return dict(data=data, bbox=bbox, mask=mask, names=names, ra=ra.astype(np.int64) - 1)


@DATASETS.register_module()
class AFLW19Dataset(FaceLandmarkDataset):
    """AFLW-19 from ``AFLWinfo_release.mat`` with FaRL's ``ra`` split and GT box.

    Named for the 19-point CUHK annotation; mmpose's ``AFLWDataset`` (COCO JSON) keeps its name
    in the shared registries.

    Args:
        data_root: the AFLW-19 folder (``AFLWinfo_release.mat`` + ``data/flickr/``).
        split: ``'train'``, ``'test'`` or ``'test_frontal'``.
        num_train: faces of the permutation that are training faces; 20,000 in FaRL's protocol.
            Only a smaller .mat (the synthetic ones) needs another value.
        **kwargs: ``pipeline``, ``test_mode`` ... as :class:`mmengine.dataset.BaseDataset`.

    Samples: see :mod:`faceanalysis.datasets.alignment.base`, plus ``visibility`` (1, 19)
    float32 (``mask_new``) and ``ann_index`` = the face's 0-based row in the .mat. ``subset`` of
    a test face is ``('frontal',)`` when all its points are visible, else ``()``.
    ``sample_name`` is the index within the split, as FaRL's.
    """

    METAINFO = landmark_metainfo(
        'aflw', AFLW19_NUM_POINTS, AFLW19_FLIP_PAIRS, names=AFLW19_NAMES,
        norm_indices=dict(inter_ocular=([6], [11]), inter_pupil=([7], [10])))
    SPLITS = ('train', 'test', 'test_frontal')
    SPLIT_SIZES = AFLW19_SPLIT_SIZES
    DATASET = 'AFLW-19'

    def __init__(self, data_root: str, split: str = 'train', num_train: int = AFLW19_NUM_TRAIN,
                 **kwargs: Any) -> None:
        if int(num_train) != num_train or num_train < 0:
            raise ValueError(f'num_train must be a non-negative integer, got {num_train!r}')
        self.num_train = int(num_train)
        super().__init__(data_root=data_root, split=split, **kwargs)

    def empty_reason(self) -> str:
        mat = osp.join(self.data_root, AFLW19_MAT_FILE)
        return f'no test face of {mat} has all 19 points visible in mask_new'

    def load_raw_samples(self) -> List[dict]:
        path = osp.join(self.data_root, AFLW19_MAT_FILE)
        info = read_aflw19_mat(path)
        ra, n = info['ra'], len(info['ra'])
        if self.num_train > n or (self.split != 'train' and self.num_train >= n):
            raise ValueError(f'{path} holds {n} faces; num_train={self.num_train} leaves '
                             f'{max(n - self.num_train, 0)} test faces (the release has '
                             f'{AFLW19_NUM_TRAIN} + 4,386; a smaller .mat needs a smaller '
                             'num_train)')
        frontal = np.all(info['mask'] == 1, axis=1)
        if self.split == 'train':
            indices = ra[:self.num_train]
        else:
            indices = ra[self.num_train:]
            if self.split == 'test_frontal':
                indices = indices[frontal[indices]]
        image_root = osp.join(self.data_root, AFLW19_IMAGE_DIR)
        samples = []
        for position, ind in enumerate(indices.tolist()):
            name = info['names'][ind]
            where = f'{path}, face {ind} (0-based row; {name})'
            left, right, top, bottom = info['bbox'][ind]
            subset = ('frontal', ) if self.split != 'train' and frontal[ind] else ()
            samples.append(self.make_sample(
                osp.join(image_root, name), info['data'][ind].reshape(2, AFLW19_NUM_POINTS).T,
                (left, top, right, bottom), where=where, ann_file=path, ann_index=ind,
                sample_name=str(position), subset=subset,
                visibility=info['mask'][ind].astype(np.float32).reshape(1, AFLW19_NUM_POINTS)))
        return samples
