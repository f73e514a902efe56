"""Common base of the face-alignment datasets: mmpose-style samples from the releases' own files.

We do not use mmpose's ``Face300WDataset`` / ``WFLWDataset`` / ``AFLWDataset``: they read
COCO-style JSON conversions, while FaRL reads HRNet's CSVs (300W, WFLW) and
``AFLWinfo_release.mat`` (AFLW-19) with its own box definitions (shared/docs/stack.md §1.2,
farl_protocol.md §3.2). The readers here produce the same sample keys as mmpose's
``BaseCocoStyleDataset`` so that mmpose's pipeline (``LoadImage``, ``GetBBoxCenterScale``,
``TopdownAffine``, ``RandomFlip``, ``PackPoseInputs``) and metrics (``NME``) work unchanged.

Sample contract (one face per sample, ``K`` landmarks, everything in ORIGINAL image pixels,
OpenCV convention: pixel centres on integers)::

    img_path           str     the image file (checked to exist when the dataset is built)
    img_id             int     index of the distinct image within this dataset (first appearance)
    id                 int     index of the sample within this dataset (0..N-1)
    keypoints          (1, K, 2) float32   x, y
    gt_keypoints       (1, K, 2) float32   a copy that transforms leave alone (the metric's GT)
    keypoints_visible  (1, K)    float32   all 1: every point is annotated and scored
    num_keypoints      int     K
    bbox               (1, 4)    float32   GT face box x1, y1, x2, y2 as FaRL defines it (not
                                           clipped to the image, unlike mmpose's COCO readers)
    face_box           (1, 4)    float32   the same box; mmpose transforms leave it alone, so it
                                           keeps the original-pixel box for box-normalised NME
    bbox_score         (1,)      float32   1
    area               float32 array       box width * height
    category_id        int64 array          1
    iscrowd            int     0
    split              str     the split the dataset was built with ('train', 'full', 'test' ...)
    subset             tuple   the named evaluation subsets the face belongs to, in FaRL's names
                               and without the whole test set: ('common',) or ('challenging',)
                               (300W), ('largepose', 'blur', ...) (WFLW), ('frontal',) (AFLW-19),
                               () for train. FaceAlignmentMetric reads it (PackPoseInputs
                               meta_keys must include 'subset') to score every subset in one run
    sample_name        str     FaRL's sample name (output file names)
    ann_file, ann_index        where the annotation came from (CSV file and 1-based line, or the
                               .mat and its 0-based face row)

plus, from the metainfo as mmpose's datasets add them in ``get_data_info``: ``dataset_name``,
``flip_indices``, ``flip_pairs``, ``upper_body_ids``, ``lower_body_ids``,
``dataset_keypoint_weights``, ``skeleton_links``. A test pipeline keeps what the metric needs
with ``PackPoseInputs(meta_keys=ALIGNMENT_META_KEYS)`` (mmpose's defaults plus ``face_box``,
``gt_keypoints``, ``subset``, ``split``, ``sample_name``).
"""
from __future__ import annotations

import copy
import os.path as osp
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmpose.datasets.datasets.utils import parse_pose_metainfo

__all__ = ['FaceLandmarkDataset', 'landmark_metainfo', 'flip_indices_from_pairs', 'DOC',
           'is_synthetic_name', 'ALIGNMENT_META_KEYS']

DOC = 'see DS_DATA.md for the expected layout'

#: Keys mmpose's ``BaseCocoStyleDataset.get_data_info`` copies from the metainfo into a sample.
POSE_METAINFO_KEYS = ('dataset_name', 'upper_body_ids', 'lower_body_ids', 'flip_pairs',
                      'dataset_keypoint_weights', 'flip_indices', 'skeleton_links')

#: ``PackPoseInputs(meta_keys=...)``: mmpose's defaults plus the per-sample items of the
#: face-alignment evaluation (original-pixel GT box and landmarks, subset tags, names).
ALIGNMENT_META_KEYS = ('id', 'img_id', 'img_path', 'category_id', 'crowd_index', 'ori_shape',
                       'img_shape', 'input_size', 'input_center', 'input_scale', 'flip',
                       'flip_direction', 'flip_indices', 'raw_ann_info', 'dataset_name',
                       'face_box', 'gt_keypoints', 'subset', 'split', 'sample_name')

#: Image names written by :mod:`faceanalysis.datasets.synthetic_alignment` start with this; such
#: datasets do not warn about counts that differ from the release.
SYNTHETIC_PREFIX = 'synthetic_'


def is_synthetic_name(path: str) -> bool:
    return osp.basename(path).startswith(SYNTHETIC_PREFIX)


def flip_indices_from_pairs(num_points: int, pairs: Sequence[Tuple[int, int]]) -> List[int]:
    """``flip_indices[i]`` = the mirror point of ``i`` (itself when it has none)."""
    flip = list(range(num_points))
    for a, b in pairs:
        if flip[a] != a or flip[b] != b:
            raise ValueError(f'point {a} or {b} appears in two flip pairs')
        flip[a], flip[b] = b, a
    return flip


def landmark_metainfo(dataset_name: str, num_points: int, flip_pairs: Sequence[Tuple[int, int]],
                      names: Optional[Sequence[str]] = None, **extra: Any) -> dict:
    """Raw pose metainfo in mmpose's format (``keypoint_info`` with ``swap`` names ...).

    ``extra`` items are kept next to the parsed metainfo (mmpose's parser drops unknown keys;
    :meth:`FaceLandmarkDataset._load_metainfo` adds them back).
    """
    names = list(names) if names is not None else [f'kpt-{i}' for i in range(num_points)]
    if len(names) != num_points:
        raise ValueError(f'{len(names)} names for {num_points} points')
    flip = flip_indices_from_pairs(num_points, flip_pairs)
    keypoint_info = {
        i: dict(name=names[i], id=i, color=[255, 0, 0], type='',
                swap=names[flip[i]] if flip[i] != i else '')
        for i in range(num_points)
    }
    return dict(dataset_name=dataset_name, keypoint_info=keypoint_info, skeleton_info={},
                joint_weights=[1.0] * num_points, sigmas=[], **extra)


def _finite(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)))


class FaceLandmarkDataset(BaseDataset):
    """mmengine ``BaseDataset`` yielding mmpose top-down samples of one face each.

    Subclasses set ``METAINFO`` (raw mmpose format, :func:`landmark_metainfo`), ``SPLITS``,
    ``SPLIT_SIZES`` (the release's counts; a different count warns) and ``DATASET`` (the name in
    messages), and implement :meth:`load_raw_samples`, returning dicts made by
    :meth:`make_sample`.

    Args:
        data_root: the dataset folder (DS_DATA.md).
        split: one of ``SPLITS``.
        pipeline, test_mode, lazy_init, indices, serialize_data, max_refetch, metainfo,
            filter_cfg: as :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO: dict = dict()
    SPLITS: Tuple[str, ...] = ()
    SPLIT_SIZES: Mapping[str, int] = {}
    DATASET = 'face alignment'

    def __init__(self, data_root: str, split: str, **kwargs: Any) -> None:
        name = type(self).__name__
        if split not in self.SPLITS:
            raise ValueError(f'{name} split must be one of {self.SPLITS}, got {split!r}')
        if not data_root:
            raise ValueError(f'{name} needs data_root (the {self.DATASET} folder; {DOC})')
        for key in ('ann_file', 'data_prefix'):
            value = kwargs.pop(key, None)
            if value and (not isinstance(value, dict) or any(value.values())):
                raise TypeError(f'{name} reads its files from data_root by their release '
                                f'names; it takes no {key} (got {value!r})')
        self.split = split
        super().__init__(data_root=data_root, **kwargs)

    # ----------------------------------------------------------------------------- metainfo
    @classmethod
    def _load_metainfo(cls, metainfo: Optional[dict] = None) -> dict:
        """Parse the raw metainfo as mmpose does (``flip_indices``, ``num_keypoints`` ...)."""
        if metainfo is None:
            metainfo = copy.deepcopy(cls.METAINFO)
        if not isinstance(metainfo, dict):
            raise TypeError(f'metainfo should be a dict, got {type(metainfo)}')
        if not metainfo:
            return {}
        parsed = parse_pose_metainfo(metainfo)
        known = {'dataset_name', 'keypoint_info', 'skeleton_info', 'joint_weights', 'sigmas',
                 'from_file', 'paper_info', 'stats_info'}
        for key, value in metainfo.items():
            if key not in known and key not in parsed:
                parsed[key] = value
        return parsed

    @property
    def num_points(self) -> int:
        return int(self._metainfo['num_keypoints'])

    # ----------------------------------------------------------------------------- samples
    def load_raw_samples(self) -> List[dict]:
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(f'{self.DATASET} root {self.data_root} does not exist or is '
                                    f'not a folder; {DOC}')
        samples = self.load_raw_samples()
        if not samples:
            raise ValueError(f'{self.DATASET} {self.split} in {self.data_root} has no faces '
                             f'({self.empty_reason()})')
        image_ids: Dict[str, int] = {}
        for index, sample in enumerate(samples):
            sample['id'] = index
            sample['img_id'] = image_ids.setdefault(sample['img_path'], len(image_ids))
        self._warn_count(samples)
        return samples

    def empty_reason(self) -> str:
        return 'empty annotation files'

    def make_sample(self, img_path: str, keypoints: np.ndarray, box_xyxy: Sequence[float],
                    where: str, ann_file: str, ann_index: int, sample_name: str,
                    subset: Sequence[str] = (), **extra: Any) -> dict:
        """One sample dict (see the module docstring); ``where`` names the annotation in errors.

        Raises ``ValueError`` for NaN/inf or a wrong point count and ``FileNotFoundError`` for a
        missing image, naming ``where``.
        """
        keypoints = np.asarray(keypoints, dtype=np.float32)
        box = np.asarray(box_xyxy, dtype=np.float32).reshape(4)
        k = self.num_points
        if keypoints.shape != (k, 2):
            raise ValueError(f'{where}: expected {k} landmarks, got an array of shape '
                             f'{keypoints.shape}')
        if not _finite(keypoints):
            bad = sorted(set(np.nonzero(~np.isfinite(keypoints))[0].tolist()))
            raise ValueError(f'{where}: landmark(s) {bad[:10]} are NaN or infinite')
        if not _finite(box):
            raise ValueError(f'{where}: the face box {box.tolist()} (x1, y1, x2, y2) holds NaN or '
                             'infinite values')
        if not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f'{where}: the face box {box.tolist()} (x1, y1, x2, y2) is empty')
        if not osp.isfile(img_path):
            raise FileNotFoundError(f'{where}: image {img_path} does not exist ({DOC})')
        bbox = box.reshape(1, 4)
        sample = dict(
            img_path=img_path,
            bbox=bbox,
            face_box=bbox.copy(),
            bbox_score=np.ones(1, dtype=np.float32),
            keypoints=keypoints.reshape(1, k, 2),
            gt_keypoints=keypoints.reshape(1, k, 2).copy(),
            keypoints_visible=np.ones((1, k), dtype=np.float32),
            num_keypoints=k,
            area=np.array((box[2] - box[0]) * (box[3] - box[1]), dtype=np.float32),
            category_id=np.array(1),
            iscrowd=0,
            split=self.split,
            subset=tuple(dict.fromkeys(subset)),
            sample_name=sample_name,
            ann_file=ann_file,
            ann_index=int(ann_index),
        )
        sample.update(extra)
        return sample

    def _warn_count(self, samples: Sequence[dict]) -> None:
        expected = self.SPLIT_SIZES.get(self.split)
        if expected is None or len(samples) == expected:
            return
        if samples and all(self._synthetic_name(s['img_path']) for s in samples):
            return
        warnings.warn(f'{self.DATASET} {self.split} in {self.data_root} has {len(samples)} faces; '
                      f'the release has {expected} (farl_protocol.md §6.2): numbers will not be '
                      f'comparable with FaRL\'s. Is the download complete? ({DOC})', UserWarning,
                      stacklevel=3)

    def _synthetic_name(self, img_path: str) -> bool:
        return is_synthetic_name(img_path)

    # ----------------------------------------------------------------------------- mmpose API
    def get_data_info(self, idx: int) -> dict:
        """The sample plus the metainfo items mmpose's pipeline reads (``flip_indices`` ...)."""
        data_info = super().get_data_info(idx)
        for key in POSE_METAINFO_KEYS:
            data_info[key] = copy.deepcopy(self._metainfo[key])
        return data_info

    def prepare_data(self, idx: int) -> Any:
        data_info = self.get_data_info(idx)
        try:
            return self.pipeline(data_info)
        except Exception as err:
            add_note = getattr(err, 'add_note', None)
            if add_note is not None:
                add_note(f'while loading {self.DATASET} sample {idx} ({data_info["img_path"]}, '
                         f'{data_info["ann_file"]} #{data_info["ann_index"]})')
            raise
