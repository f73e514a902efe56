"""300W (68 points) from the iBUG release and HRNet's CSVs, with FaRL's conventions.

Layout (DS_DATA.md; farl_protocol.md §6)::

    data_root/afw/  helen/{trainset,testset}/  ibug/  lfpw/{trainset,testset}/   images
    data_root/face_landmarks_300w_train.csv             3,148 faces
    data_root/face_landmarks_300w_valid_common.csv        554 (test "common")
    data_root/face_landmarks_300w_valid_challenge.csv     135 (test "challenging")

Splits: ``train``, ``common``, ``challenging`` and ``full`` (= common then challenging, 689;
FaRL evaluates it as a separate loader over both files). FaRL (``farl/datasets/ibug300w.py``)
subtracts 2.0 px from every landmark and from ``center_w`` / ``center_h`` (the box side is
unchanged); so do we, so our landmarks, boxes and NMEs are FaRL's.

Points follow the iBUG 68-point scheme (0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67
mouth); inter-ocular NME uses 36/45 (outer eye corners), inter-pupil the eye centres
mean(36..41) / mean(42..47) (farl_protocol.md §4.3; stored as ``norm_indices`` in the metainfo).
Flip pairs are mmpose's ``300w`` ones (FaRL trains without flip).
"""
from __future__ import annotations

import os.path as osp
from typing import Tuple

from faceanalysis.registry import DATASETS

from .base import landmark_metainfo
from .hrnet_csv import HRNetCSVDataset, HRNetCSVRow

__all__ = ['IBUG300WDataset', 'IBUG300W_SPLIT_SIZES', 'IBUG300W_FLIP_PAIRS',
           'IBUG300W_CSV_FILES', 'IBUG300W_QUIRK_PATHS']

IBUG300W_NUM_POINTS = 68
#: Faces per split in HRNet's CSVs (farl_protocol.md §6.2).
IBUG300W_SPLIT_SIZES = dict(train=3148, common=554, challenging=135, full=689)
IBUG300W_CSV_FILES = dict(
    train=('face_landmarks_300w_train.csv', ),
    common=('face_landmarks_300w_valid_common.csv', ),
    challenging=('face_landmarks_300w_valid_challenge.csv', ),
    full=('face_landmarks_300w_valid_common.csv', 'face_landmarks_300w_valid_challenge.csv'),
)
_CSV_SUBSET = {'face_landmarks_300w_valid_common.csv': 'common',
               'face_landmarks_300w_valid_challenge.csv': 'challenging'}

# HRNet's CSV names one image 'ibug/image_092_01.jpg', but the 300-W release ships it as
# 'ibug/image_092 _01.jpg' (with a space before '_01'). FaRL remaps the CSV name
# (farl/datasets/ibug300w.py, ``error_im_paths``); we do the same, and still accept a copy that a
# user renamed to the CSV's spelling.
IBUG300W_QUIRK_PATHS = {'ibug/image_092_01.jpg': 'ibug/image_092 _01.jpg'}

IBUG300W_FLIP_PAIRS = (
    # jaw 0-16
    *[(i, 16 - i) for i in range(8)],
    # brows 17-21 <-> 26-22
    *[(17 + i, 26 - i) for i in range(5)],
    # nostrils 31-35 (33 on the axis)
    (31, 35), (32, 34),
    # eyes: outer corners 36/45, upper lids, inner corners 39/42, lower lids
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    # outer lips (51, 57 on the axis), inner lips (62, 66 on the axis)
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67),
)


@DATASETS.register_module()
class IBUG300WDataset(HRNetCSVDataset):
    """300W from HRNet's CSVs, FaRL's -2 px offset and ``image_092 _01.jpg`` remap.

    Named after FaRL's ``IBUG300W`` class; mmpose's ``Face300WDataset`` (COCO JSON) keeps its
    name in the shared registries.

    Args:
        data_root: the 300W folder (``afw/ helen/ ibug/ lfpw/`` + the three CSVs).
        split: ``'train'``, ``'common'``, ``'challenging'`` or ``'full'``.
        **kwargs: ``pipeline``, ``test_mode`` ... as :class:`mmengine.dataset.BaseDataset`.

    Samples: see :mod:`faceanalysis.datasets.alignment.base`; ``subset`` is ``('common',)`` or
    ``('challenging',)`` for the test splits (so ``full`` reports both), ``()`` for train.
    """

    METAINFO = landmark_metainfo(
        '300w', IBUG300W_NUM_POINTS, IBUG300W_FLIP_PAIRS,
        norm_indices=dict(inter_ocular=([36], [45]),
                          inter_pupil=(list(range(36, 42)), list(range(42, 48)))))
    SPLITS = ('train', 'common', 'challenging', 'full')
    SPLIT_SIZES = IBUG300W_SPLIT_SIZES
    CSV_FILES = IBUG300W_CSV_FILES
    DATASET = '300W'
    OFFSET = 2.0

    def resolve_image(self, image_name: str, where: str) -> Tuple[str, str]:
        released = IBUG300W_QUIRK_PATHS.get(image_name)
        if released is not None:
            path = osp.join(self.data_root, released)
            as_in_csv = osp.join(self.data_root, image_name)
            if osp.isfile(path) or not osp.isfile(as_in_csv):
                # the release's spelling (a missing image is reported under it)
                return path, released
            return as_in_csv, released  # a renamed copy; FaRL's sample name all the same
        return osp.join(self.data_root, image_name), image_name

    def subset_tags(self, csv_name: str, row: HRNetCSVRow) -> Tuple[str, ...]:
        return (_CSV_SUBSET[csv_name], ) if csv_name in _CSV_SUBSET else ()

    def _synthetic_name(self, img_path: str) -> bool:
        released = set(IBUG300W_QUIRK_PATHS.values())
        return (super()._synthetic_name(img_path)
                or osp.relpath(img_path, self.data_root).replace(osp.sep, '/') in released)
