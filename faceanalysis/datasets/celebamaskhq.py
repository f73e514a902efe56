"""CelebAMask-HQ face parsing, read from the release layout (DS_DATA.md)::

    data_root/CelebA-HQ-img/<id>.jpg                                    images (1024x1024)
    data_root/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png   part masks (512x512)
    data_root/CelebA-HQ-to-CelebA-mapping.txt   header 'idx orig_idx orig_file', a row per image
    data_root/list_eval_partition.txt           CelebA's '<orig_file> <0 train | 1 val | 2 test>'

The split of an HQ image is the CelebA partition of its original file (24,183 / 2,993 / 2,824).
Samples follow the order of ``list_eval_partition.txt``, as in FaRL.

The 19-class label is built from the part masks in FaRL's overwrite order
(shared/docs/farl_protocol.md §2.3; ``farl/datasets/celebamask_hq.py``): value ``i + 1`` for the
``i``-th part of :data:`CELEBAMASKHQ_PARTS`, later parts overwrite earlier ones (hair over the
face parts, eyeglasses over the eyes, hat over the hair), a missing part file is skipped. This is
*not* the order of the official ``g_mask.py`` (:data:`G_MASK_PARTS`), which yields other ground
truth. The label has the masks' size (512 for the release, half the image); the image keeps its
size and the pipeline resizes it (FaRL: ``cv2.INTER_LINEAR`` to 512)::

    dict(type='LoadImageFromFile'),
    dict(type='LoadCelebAMaskHQAnnotations'),
    dict(type='Resize', scale=(512, 512), keep_ratio=False),
    dict(type='FaceAlignMatrix', mode='identity'), ...

``tools/dataset_converters/celebamaskhq.py ROOT`` caches the merged labels as
``ROOT/CelebAMask-HQ-label-farl/<id>.png``; the dataset reads them when that folder exists (or when
``label_dir`` names another), and builds the labels from the part masks otherwise.
"""
from __future__ import annotations

import os
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import BaseSegDataset

from faceanalysis.registry import DATASETS, TRANSFORMS

from .lapa import (_listing, check_label_shape, farl_subsample_indices, finish_label,
                   prepare_with_context, read_label_map)

__all__ = [
    'CelebAMaskHQDataset', 'LoadCelebAMaskHQAnnotations', 'build_celebamaskhq_label',
    'read_celebamaskhq_split', 'read_celebamaskhq_mapping', 'celebamaskhq_part_path',
    'CELEBAMASKHQ_CLASSES', 'CELEBAMASKHQ_PALETTE', 'CELEBAMASKHQ_PARTS', 'CELEBAMASKHQ_SWAP_PAIRS',
    'CELEBAMASKHQ_SPLIT_SIZES', 'CELEBAMASKHQ_LABEL_DIR', 'G_MASK_PARTS'
]

#: Part-mask suffixes in FaRL's overwrite order; part ``i`` gets label value ``i + 1``.
CELEBAMASKHQ_PARTS = ('neck', 'skin', 'cloth', 'l_ear', 'r_ear', 'l_brow', 'r_brow', 'l_eye',
                      'r_eye', 'nose', 'mouth', 'l_lip', 'u_lip', 'hair', 'eye_g', 'hat', 'ear_r',
                      'neck_l')
#: The official ``g_mask.py`` order (reference only: its values and overwrites differ).
G_MASK_PARTS = ('skin', 'nose', 'eye_g', 'l_eye', 'r_eye', 'l_brow', 'r_brow', 'l_ear', 'r_ear',
                'mouth', 'u_lip', 'l_lip', 'hair', 'hat', 'ear_r', 'neck_l', 'neck', 'cloth')
#: Class names by value; left/right as CelebAMask-HQ's ``l_`` / ``r_`` file names (FaRL calls
#: ``l_ear`` 'rr', ``l_brow`` 'rb', ``l_eye`` 're': only the naming differs).
CELEBAMASKHQ_CLASSES = ('background', 'neck', 'skin', 'cloth', 'left_ear', 'right_ear',
                        'left_eyebrow', 'right_eyebrow', 'left_eye', 'right_eye', 'nose',
                        'inner_mouth', 'lower_lip', 'upper_lip', 'hair', 'eyeglasses', 'hat',
                        'earring', 'necklace')
CELEBAMASKHQ_PALETTE = ((0, 0, 0), (255, 153, 51), (204, 153, 128), (0, 204, 0), (102, 51, 0),
                        (153, 76, 0), (76, 38, 0), (127, 63, 0), (0, 153, 255), (0, 204, 204),
                        (255, 178, 102), (127, 0, 51), (204, 0, 102), (255, 0, 76),
                        (51, 25, 0), (204, 0, 204), (0, 0, 153), (255, 255, 0), (0, 102, 102))
#: Left/right class pairs (ears, brows, eyes) for a horizontal flip.
CELEBAMASKHQ_SWAP_PAIRS = ((4, 5), (6, 7), (8, 9))
#: Images per split (CelebA partition 0 / 1 / 2 of the 30,000 HQ images, farl_protocol.md §6.2).
CELEBAMASKHQ_SPLIT_SIZES = dict(train=24183, val=2993, test=2824)
CELEBAMASKHQ_NUM_IMAGES = 30000
#: Folder (under the data root) of the converter's merged labels, used when it exists.
CELEBAMASKHQ_LABEL_DIR = 'CelebAMask-HQ-label-farl'
IMAGE_DIR = 'CelebA-HQ-img'
MASK_DIR = 'CelebAMask-HQ-mask-anno'
MAPPING_FILE = 'CelebA-HQ-to-CelebA-mapping.txt'
PARTITION_FILE = 'list_eval_partition.txt'
SPLITS = {'train': 0, 'val': 1, 'test': 2}

_DOC = 'see DS_DATA.md for the expected layout'


def celebamaskhq_part_path(mask_dir: str, hq_id: int, part: str) -> str:
    """``mask_dir/<id // 2000>/<id:05d>_<part>.png`` (integer division, unlike Python-2 g_mask)."""
    return osp.join(mask_dir, str(hq_id // 2000), f'{hq_id:05d}_{part}.png')


def build_celebamaskhq_label(mask_dir: str, hq_id: int,
                             parts: Sequence[str] = CELEBAMASKHQ_PARTS,
                             shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Merge the part masks of one image into a uint8 label, later parts overwriting earlier.

    Each mask is read as grayscale; its pixels ``> 0`` get value ``i + 1`` for ``parts[i]``, as
    FaRL does. Missing part files are skipped.

    Args:
        mask_dir: the ``CelebAMask-HQ-mask-anno`` folder.
        hq_id: CelebA-HQ image index.
        parts: suffixes in overwrite order (default FaRL's).
        shape: expected ``(H, W)`` of every mask (512x512 in the release); ``None`` requires the
            masks of this image to agree with each other.

    Raises:
        ValueError: a mask that cannot be decoded or has the wrong size (naming the file).
        FileNotFoundError: no part mask at all for ``hq_id``.
    """
    label = None
    reason = 'expected from the image size' if shape is not None else ''
    for value, part in enumerate(parts, start=1):
        path = celebamaskhq_part_path(mask_dir, hq_id, part)
        if not osp.exists(path):
            continue
        mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise ValueError(f'CelebAMask-HQ part mask {path} cannot be decoded as an image')
        if label is None:
            if shape is None:
                shape, reason = mask.shape[:2], f'the size of {path}'
            label = np.zeros(tuple(shape), np.uint8)
        if mask.shape[:2] != label.shape:
            raise ValueError(f'CelebAMask-HQ part mask {path} is {mask.shape[1]}x{mask.shape[0]} '
                             f'(WxH); expected {label.shape[1]}x{label.shape[0]} ({reason}; the '
                             'release has 512x512 masks for 1024x1024 images)')
        label[mask > 0] = value
    if label is None:
        raise FileNotFoundError(
            f'CelebAMask-HQ image {hq_id}: no part mask '
            f'{celebamaskhq_part_path(mask_dir, hq_id, "<part>")} exists; {_DOC}')
    return label


def _read_lines(path: str, what: str) -> List[Tuple[int, List[str]]]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'CelebAMask-HQ: {what} {path} does not exist; {_DOC}')
    with open(path) as f:
        return [(number, line.split()) for number, line in enumerate(f, start=1)
                if '.jpg' in line]  # FaRL's filter: skips the header and blank lines


def read_celebamaskhq_mapping(data_root: str) -> Dict[str, int]:
    """``{orig_file: hq_id}`` from ``CelebA-HQ-to-CelebA-mapping.txt`` (``idx orig_idx orig_file``).

    Lines without ``.jpg`` (the header, blank lines) are skipped, as FaRL does; errors name the
    file and line.
    """
    mapping_path = osp.join(data_root, MAPPING_FILE)
    orig_to_hq: Dict[str, int] = {}
    for number, fields in _read_lines(mapping_path, 'the HQ-to-CelebA mapping'):
        try:
            hq_id, _, orig_file = int(fields[0]), int(fields[1]), fields[2]
            if len(fields) != 3 or hq_id < 0:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f'{mapping_path}:{number}: expected "idx orig_idx orig_file", got '
                             f'{" ".join(fields)!r}') from None
        if orig_file in orig_to_hq:
            raise ValueError(f'{mapping_path}:{number}: {orig_file} is mapped twice')
        orig_to_hq[orig_file] = hq_id
    if not orig_to_hq:
        raise ValueError(f'{mapping_path} lists no image; expected lines "idx orig_idx '
                         'orig_file.jpg"')
    return orig_to_hq


def read_celebamaskhq_split(data_root: str, split: str) -> List[Tuple[int, str]]:
    """``[(hq_id, orig_file), ...]`` of ``split`` in ``list_eval_partition.txt`` order.

    Reads ``CelebA-HQ-to-CelebA-mapping.txt`` (``idx orig_idx orig_file``) and CelebA's
    ``list_eval_partition.txt`` (``<orig_file> <0|1|2>``); CelebA files without an HQ image are
    skipped. Errors name the file (and line) that is missing or malformed.
    """
    if split not in SPLITS:
        raise ValueError(f'CelebAMask-HQ split must be one of {tuple(SPLITS)}, got {split!r}')
    orig_to_hq = read_celebamaskhq_mapping(data_root)
    partition_path = osp.join(data_root, PARTITION_FILE)
    wanted = SPLITS[split]
    samples = []
    for number, fields in _read_lines(partition_path, 'the CelebA partition list'):
        try:
            orig_file, group = fields[0], int(fields[1])
            if len(fields) != 2 or group not in (0, 1, 2):
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f'{partition_path}:{number}: expected "<file>.jpg <0|1|2>", got '
                             f'{" ".join(fields)!r}') from None
        if group == wanted and orig_file in orig_to_hq:
            samples.append((orig_to_hq[orig_file], orig_file))
    return samples


@TRANSFORMS.register_module()
class LoadCelebAMaskHQAnnotations(BaseTransform):
    """Load the CelebAMask-HQ label: the converter's cached PNG, or merged from the part masks.

    With ``results['seg_map_path']`` set (the dataset found cached labels) the PNG is read and
    checked (values ``0..18``); otherwise the part masks of ``results['celeba_hq_id']`` under
    ``results['mask_anno_dir']`` are merged in ``parts`` order (:func:`build_celebamaskhq_label`).
    Either way the label must be ``label_scale`` times the loaded image (``ori_shape``): 512 for
    the 1024 release images; ``label_scale=None`` skips that check.

    Required keys: ``mask_anno_dir`` + ``celeba_hq_id`` or ``seg_map_path``; ``reduce_zero_label``,
    ``seg_fields``; ``ori_shape`` when the image is loaded. Added keys: ``gt_seg_map``.
    """

    def __init__(self, parts: Sequence[str] = CELEBAMASKHQ_PARTS,
                 label_scale: Optional[float] = 0.5, reduce_zero_label: Optional[bool] = None,
                 imdecode_backend: str = 'pillow') -> None:
        self.parts = tuple(parts)
        self.label_scale = None if label_scale is None else float(label_scale)
        self.reduce_zero_label = reduce_zero_label
        self.imdecode_backend = imdecode_backend

    def _expected_shape(self, results: dict) -> Optional[Tuple[int, int]]:
        shape = results.get('ori_shape')
        if shape is None and results.get('img') is not None:
            shape = results['img'].shape[:2]
        if shape is None or self.label_scale is None:
            return None
        return tuple(int(round(s * self.label_scale)) for s in shape[:2])

    def transform(self, results: dict) -> dict:
        path = results.get('seg_map_path')
        if path:
            label = read_label_map(path, len(self.parts) + 1, self.imdecode_backend)
            if self.label_scale is not None:
                check_label_shape(results, label, path, self.label_scale)
        else:
            for key in ('mask_anno_dir', 'celeba_hq_id'):
                if key not in results:
                    raise KeyError(f'LoadCelebAMaskHQAnnotations needs results[{key!r}] (set by '
                                   'CelebAMaskHQDataset) or a cached label in seg_map_path')
            label = build_celebamaskhq_label(results['mask_anno_dir'],
                                             int(results['celeba_hq_id']), self.parts,
                                             self._expected_shape(results))
        return finish_label(results, label, self.reduce_zero_label)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(parts={self.parts}, '
                f'label_scale={self.label_scale})')


@DATASETS.register_module()
class CelebAMaskHQDataset(BaseSegDataset):
    """CelebAMask-HQ in its release layout, 19 classes in FaRL's overwrite order.

    Each sample carries ``img_path`` (the full-size image), ``celeba_hq_id``, ``orig_file`` (its
    CelebA name), ``mask_anno_dir`` and ``seg_map_path`` (the cached label, or ``None`` when
    :class:`LoadCelebAMaskHQAnnotations` merges the part masks), ``reduce_zero_label`` (False)
    and ``seg_fields``.

    Args:
        data_root: the folder holding ``CelebA-HQ-img/``, ``CelebAMask-HQ-mask-anno/`` and the two
            list files.
        split: ``'train'`` (partition 0), ``'val'`` (1, unused by FaRL) or ``'test'`` (2).
        label_dir: merged label PNGs ``<id>.png`` of the converter. ``None``: use
            ``data_root/CelebAMask-HQ-label-farl`` if that folder exists, else merge the part masks
            on the fly. A relative path is relative to ``data_root``. ``False``: always merge on
            the fly.
        train_data_ratio: as :class:`~faceanalysis.datasets.LaPaDataset` (FaRL's subsampling of
            the training split, in partition-file order, which is FaRL's order).
        pipeline, metainfo, test_mode, ...: as :class:`mmseg.datasets.BaseSegDataset`.

    Raises (when built): ``FileNotFoundError`` naming a missing list file, image folder or image,
    mask folder, ``label_dir`` or cached label; ``ValueError`` naming the line of a malformed
    list file. With the full 30,000-image mapping, split counts other than
    :data:`CELEBAMASKHQ_SPLIT_SIZES` give a ``UserWarning``.
    """

    METAINFO = dict(classes=CELEBAMASKHQ_CLASSES,
                    palette=[list(c) for c in CELEBAMASKHQ_PALETTE],
                    swap_pairs=CELEBAMASKHQ_SWAP_PAIRS)

    def __init__(self, data_root: str, split: str = 'train',
                 label_dir: Union[str, bool, None] = None, train_data_ratio: float = 1.0,
                 img_suffix: str = '.jpg', reduce_zero_label: bool = False,
                 **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f'CelebAMaskHQDataset split must be one of {tuple(SPLITS)}, '
                             f'got {split!r}')
        train_data_ratio = float(train_data_ratio)
        if not 0.0 < train_data_ratio <= 1.0:
            raise ValueError(f'train_data_ratio must be in (0, 1], got {train_data_ratio}')
        if train_data_ratio < 1.0 and split != 'train':
            raise ValueError(f'train_data_ratio={train_data_ratio} subsamples the training '
                             f'split; CelebAMaskHQDataset(split={split!r}) must keep 1.0')
        if data_root is None:
            raise ValueError('CelebAMaskHQDataset needs data_root')
        if label_dir is True:
            raise ValueError('label_dir is a folder, None (auto) or False (no cache)')
        self.split = split
        self.label_dir = label_dir
        self.train_data_ratio = train_data_ratio
        super().__init__(data_root=data_root, img_suffix=img_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

    def _resolve_label_dir(self) -> Optional[str]:
        if self.label_dir is False:
            return None
        if self.label_dir is None:
            default = osp.join(self.data_root, CELEBAMASKHQ_LABEL_DIR)
            return default if osp.isdir(default) else None
        folder = osp.join(self.data_root, self.label_dir)
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'CelebAMask-HQ label_dir {folder} does not exist; write it with '
                f'`python tools/dataset_converters/celebamaskhq.py {self.data_root} --out '
                f'{folder}` or leave label_dir=None to merge the part masks on the fly')
        return folder

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'CelebAMask-HQ root {root} does not exist or is not a '
                                    f'folder; {_DOC}')
        samples = read_celebamaskhq_split(root, self.split)
        if not samples:
            raise ValueError(f'CelebAMask-HQ {self.split} split is empty: no file of partition '
                             f'{SPLITS[self.split]} in {osp.join(root, PARTITION_FILE)} has an HQ '
                             f'image in {osp.join(root, MAPPING_FILE)}')
        self._warn_count(len(samples))

        image_dir = osp.join(root, IMAGE_DIR)
        if not osp.isdir(image_dir):
            raise FileNotFoundError(f'CelebAMask-HQ image folder {image_dir} does not exist; '
                                    f'{_DOC}')
        present = set(os.listdir(image_dir))
        image_names = [f'{hq_id}{self.img_suffix}' for hq_id, _ in samples]
        missing = [osp.join(image_dir, n) for n in image_names if n not in present]
        if missing:
            raise FileNotFoundError(f'CelebAMask-HQ {self.split} split: {len(missing)} image(s) '
                                    f'listed by {MAPPING_FILE} do not exist: {_listing(missing)}')

        mask_dir = osp.join(root, MASK_DIR)
        label_dir = self._resolve_label_dir()
        if label_dir is None and not osp.isdir(mask_dir):
            raise FileNotFoundError(
                f'CelebAMask-HQ part-mask folder {mask_dir} does not exist (and no merged labels '
                f'in {osp.join(root, CELEBAMASKHQ_LABEL_DIR)}); {_DOC}')
        label_paths: List[Optional[str]] = [None] * len(samples)
        if label_dir is not None:
            cached = set(os.listdir(label_dir))
            label_paths = [osp.join(label_dir, f'{hq_id}.png') for hq_id, _ in samples]
            missing = [p for p in label_paths if osp.basename(p) not in cached]
            if missing:
                raise FileNotFoundError(
                    f'CelebAMask-HQ {self.split} split: {len(missing)} merged label(s) missing in '
                    f'{label_dir}: {_listing(missing)}; rerun '
                    f'tools/dataset_converters/celebamaskhq.py, or pass label_dir=False to merge '
                    'the part masks on the fly')

        data_list = []
        for (hq_id, orig_file), name, label_path in zip(samples, image_names, label_paths):
            data_list.append(dict(
                img_path=osp.join(image_dir, name),
                seg_map_path=label_path,
                mask_anno_dir=mask_dir,
                celeba_hq_id=hq_id,
                orig_file=orig_file,
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[]))
        if self.train_data_ratio < 1.0:
            data_list = [data_list[i] for i in
                         farl_subsample_indices(len(data_list), self.train_data_ratio)]
        return data_list

    def _warn_count(self, count: int) -> None:
        expected = CELEBAMASKHQ_SPLIT_SIZES[self.split]
        if count == expected:
            return
        with open(osp.join(self.data_root, MAPPING_FILE)) as f:
            num_hq = sum('.jpg' in line for line in f)
        if num_hq != CELEBAMASKHQ_NUM_IMAGES:
            return  # a subset (or synthetic data), not the release
        warnings.warn(f'CelebAMask-HQ {self.split} split in {self.data_root} has {count} images; '
                      f'the release has {expected} (farl_protocol.md §6.2). Is '
                      f'{PARTITION_FILE} CelebA\'s original partition file? ({_DOC})',
                      UserWarning, stacklevel=2)

    def prepare_data(self, idx: int) -> Any:
        return prepare_with_context(self, idx)
