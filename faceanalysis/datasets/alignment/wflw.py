"""WFLW (98 points) from the release images and HRNet's CSVs, as FaRL reads them.

Layout (DS_DATA.md; farl_protocol.md §6)::

    data_root/WFLW_images/<event folder>/<name>.jpg
    data_root/face_landmarks_wflw_train.csv                 7,500 faces
    data_root/face_landmarks_wflw_test.csv                  2,500
    data_root/face_landmarks_wflw_test_<subset>.csv         largepose 326, expression 314,
                                                            illumination 698, makeup 206,
                                                            occlusion 736, blur 773

Splits: ``train``, ``test`` and ``test_<subset>`` for the six subsets. No pixel offset (unlike
300W). The CSVs' image names are relative to ``WFLW_images/``.

A ``test`` sample's ``subset`` lists the attribute subsets (``'largepose'`` ...) whose CSV holds
the same face (same image and landmarks), so one run over ``test`` can report every subset;
subset CSVs that are absent are left out with a warning. A ``test_<s>`` sample has
``subset=(s,)``.

Points follow WFLW's 98-point scheme (0-32 contour, 33-50 brows, 51-59 nose, 60-75 eyes, 76-95
mouth, 96/97 pupils); inter-ocular NME uses 60/72, inter-pupil 96/97 (farl_protocol.md §4.3).
Flip pairs are mmpose's ``wflw`` ones.
"""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Dict, List, Tuple

import numpy as np

from faceanalysis.registry import DATASETS

from .base import landmark_metainfo
from .hrnet_csv import HRNetCSVDataset, HRNetCSVRow, read_hrnet_csv

__all__ = ['WFLWCSVDataset', 'WFLW_SPLIT_SIZES', 'WFLW_SUBSETS', 'WFLW_FLIP_PAIRS',
           'WFLW_CSV_FILES']

WFLW_NUM_POINTS = 98
WFLW_SUBSETS = ('largepose', 'expression', 'illumination', 'makeup', 'occlusion', 'blur')
#: Faces per split (farl_protocol.md §6.2, confirmed by FaRL's FR denominators).
WFLW_SPLIT_SIZES = dict(train=7500, test=2500, test_largepose=326, test_expression=314,
                        test_illumination=698, test_makeup=206, test_occlusion=736, test_blur=773)
WFLW_CSV_FILES = dict(train=('face_landmarks_wflw_train.csv', ),
                      test=('face_landmarks_wflw_test.csv', ),
                      **{f'test_{s}': (f'face_landmarks_wflw_test_{s}.csv', )
                         for s in WFLW_SUBSETS})

WFLW_FLIP_PAIRS = (
    # contour 0-32 (16 the chin)
    *[(i, 32 - i) for i in range(16)],
    # brows: upper 33-37 <-> 46-42, lower 38-41 <-> 50-47
    *[(33 + i, 46 - i) for i in range(5)], *[(38 + i, 50 - i) for i in range(4)],
    # nostrils 55-59 (57 on the axis); nose bridge 51-54 on the axis
    (55, 59), (56, 58),
    # eyes 60-67 <-> 68-75 (60/72 outer corners, 64/68 inner corners)
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    # outer lips 76-87 (79, 85 on the axis), inner lips 88-95 (90, 94 on the axis)
    (76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95),
    # pupils
    (96, 97),
)


def _face_key(image_name: str, landmarks: np.ndarray) -> Tuple:
    return (image_name, ) + tuple(np.round(landmarks.reshape(-1), 3).tolist())


@DATASETS.register_module()
class WFLWCSVDataset(HRNetCSVDataset):
    """WFLW read from HRNet's CSVs (FaRL's reader), not from mmpose's COCO JSON.

    The name says where the annotations come from and keeps mmpose's ``WFLWDataset`` (COCO
    JSON conversion) usable in the shared registries.

    Args:
        data_root: the WFLW folder (``WFLW_images/`` + the CSVs).
        split: ``'train'``, ``'test'`` or ``'test_<subset>'`` with subset in
            :data:`WFLW_SUBSETS`.
        tag_subsets: for ``split='test'``, read the six subset CSVs and list in each sample's
            ``subset`` those that hold it.
        **kwargs: ``pipeline``, ``test_mode`` ... as :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = landmark_metainfo(
        'wflw', WFLW_NUM_POINTS, WFLW_FLIP_PAIRS,
        norm_indices=dict(inter_ocular=([60], [72]), inter_pupil=([96], [97])))
    SPLITS = ('train', 'test') + tuple(f'test_{s}' for s in WFLW_SUBSETS)
    SPLIT_SIZES = WFLW_SPLIT_SIZES
    CSV_FILES = WFLW_CSV_FILES
    DATASET = 'WFLW'
    IMAGE_DIR = 'WFLW_images'

    def __init__(self, data_root: str, split: str = 'train', tag_subsets: bool = True,
                 **kwargs) -> None:
        self.tag_subsets = bool(tag_subsets)
        self._subset_of: Dict[Tuple, List[str]] = {}
        super().__init__(data_root=data_root, split=split, **kwargs)

    def sample_name(self, image_name: str, landmarks: np.ndarray) -> str:
        # farl/datasets/wflw.py: path with '.' for '/', plus the landmarks' mean
        cx, cy = np.mean(np.asarray(landmarks, dtype=np.float32), axis=0)
        return osp.splitext(image_name)[0].replace('/', '.') + ('_%.3f_%.3f' % (cx, cy))

    def subset_tags(self, csv_name: str, row: HRNetCSVRow) -> Tuple[str, ...]:
        if self.split.startswith('test_'):
            return (self.split[len('test_'):], )
        return tuple(self._subset_of.get(_face_key(row.image_name, row.landmarks), ()))

    def load_raw_samples(self) -> List[dict]:
        self._subset_of = {}
        found: Dict[str, int] = {}
        if self.split == 'test' and self.tag_subsets:
            missing = []
            for subset in WFLW_SUBSETS:
                path = self.csv_path(WFLW_CSV_FILES[f'test_{subset}'][0])
                if not osp.isfile(path):
                    missing.append(path)
                    continue
                rows = read_hrnet_csv(path, self.num_points, self.DATASET)
                found[path] = len(rows)
                for row in rows:
                    self._subset_of.setdefault(_face_key(row.image_name, row.landmarks),
                                               []).append(subset)
            if missing:
                warnings.warn(f'WFLW test: subset file(s) {", ".join(missing)} do not exist; '
                              'their subsets are not tagged on the test samples', UserWarning,
                              stacklevel=2)
        samples = super().load_raw_samples()
        for path, count in found.items():
            name = osp.basename(path)[len('face_landmarks_wflw_test_'):-len('.csv')]
            tagged = sum(name in s['subset'] for s in samples)
            if tagged != count:
                warnings.warn(f'WFLW test: {count - tagged} of the {count} faces of {path} are '
                              f'not in the test CSV; the {name} tag covers {tagged}', UserWarning,
                              stacklevel=2)
        return samples
