"""LaPa face parsing (JD AI Research), read from the release layout (DS_DATA.md)::

    data_root/{train,val,test}/images/<name>.jpg      RGB face
    data_root/{train,val,test}/labels/<name>.png      uint8, values 0..10 (FaRL's order below)
    data_root/{train,val,test}/landmarks/<name>.txt   '106', then 106 'x y' pairs in pixels

Classes (shared/docs/farl_protocol.md §2.3; the raw PNG values, FaRL uses them directly)::

    0 background  1 skin  2 left brow  3 right brow  4 left eye  5 right eye  6 nose
    7 upper lip  8 inner mouth  9 lower lip  10 hair

A training pipeline reads the label with :class:`LoadLaPaAnnotations` (mmseg's ``LoadAnnotations``
plus checks: readable, single channel, the image's size, values 0..10) and aligns with the 106
landmarks that every sample carries (``results['landmarks']``, read by ``FaceAlignMatrix``)::

    train_dataloader = dict(dataset=dict(
        type='LaPaDataset', data_root='data/LaPa', split='train',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadLaPaAnnotations'),
                  dict(type='FaceAlignMatrix', mode='landmarks'), ...]))

The helpers at the bottom (:func:`farl_subsample_indices`, :func:`read_label_map`) are shared
with :mod:`faceanalysis.datasets.celebamaskhq`.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import random
import re
import warnings
from typing import Any, Dict, List, Optional, Sequence

import cv2
import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations

from faceanalysis.registry import DATASETS, TRANSFORMS

from .synthetic import LAPA_CLASSES, LAPA_PALETTE

__all__ = [
    'LaPaDataset', 'LoadLaPaAnnotations', 'LAPA_SPLIT_SIZES', 'LAPA_SWAP_PAIRS',
    'LAPA_NUM_LANDMARKS', 'read_lapa_landmark_file', 'farl_subsample_indices', 'read_label_map'
]

#: Images per split of the release (farl_protocol.md §6.2); a different count only warns.
LAPA_SPLIT_SIZES = dict(train=18176, val=2000, test=2000)
#: Left/right class pairs (brows, eyes) for a horizontal flip (``RandomFlip(swap_seg_labels=)``).
LAPA_SWAP_PAIRS = ((2, 3), (4, 5))
LAPA_NUM_LANDMARKS = 106
SPLITS = ('train', 'val', 'test')
#: FaRL's ``random_subsample_seed`` (blueprint/ml/dataprocessor.py::DataSource).
FARL_SUBSAMPLE_SEED = 123

_DOC = 'see DS_DATA.md for the expected layout'
_SHOW = 5  # file names listed in an error before "... and N more"


def _listing(paths: Sequence[str], total: Optional[int] = None) -> str:
    total = len(paths) if total is None else total
    shown = ', '.join(paths[:_SHOW])
    return shown + (f' ... and {total - _SHOW} more' if total > _SHOW else '')


def read_lapa_landmark_file(path: str,
                            num_points: int = LAPA_NUM_LANDMARKS) -> np.ndarray:
    """Parse a LaPa landmark file: the point count (``106``), then ``2 * count`` numbers.

    Any whitespace (spaces, tabs, newlines, a trailing blank line) separates the numbers, as in
    the release. Raises ``ValueError`` naming the file if it is empty, holds something that is not
    a number, announces another count than ``num_points`` or holds the wrong number of values.

    Returns:
        ``(num_points, 2)`` float32 ``(x, y)`` pixel coordinates.
    """
    try:
        with open(path) as f:
            tokens = f.read().split()
    except UnicodeDecodeError as err:
        raise ValueError(f'LaPa landmark file {path} is not text ({err})') from None
    if not tokens:
        raise ValueError(f'LaPa landmark file {path} is empty; expected {num_points} followed by '
                         f'{2 * num_points} numbers')
    try:
        values = np.asarray(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise ValueError(f'LaPa landmark file {path} holds {bad!r}, which is not a number') \
            from None
    header, coords = values[0], values[1:]
    if header != num_points:
        raise ValueError(f'LaPa landmark file {path} starts with {tokens[0]!r}; LaPa files start '
                         f'with the point count {num_points}')
    if len(coords) != 2 * num_points:
        raise ValueError(f'LaPa landmark file {path} has {len(coords)} coordinates after the '
                         f'count {num_points}; expected {2 * num_points} (x y pairs)')
    return np.asarray(coords, dtype=np.float32).reshape(num_points, 2)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def farl_subsample_indices(num: int, ratio: float, seed: int = FARL_SUBSAMPLE_SEED) -> List[int]:
    """Indices of FaRL's low-data training set (``train_data_ratio``, farl_protocol.md §5.6).

    As blueprint's ``DataSource(random_ratio=ratio)``: shuffle ``range(num)`` with
    ``random.Random(seed)`` (seed 123), keep the first ``int(num * ratio)``, then repeat that list
    and cut it to ``num`` entries, so an epoch keeps its length (and the schedule its meaning)
    while only ``int(num * ratio)`` distinct samples are seen.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f'train_data_ratio must be in (0, 1], got {ratio}')
    ids = list(range(num))
    random.Random(seed).shuffle(ids)
    keep = int(num * ratio)
    if keep < 1:
        raise ValueError(f'train_data_ratio={ratio} of {num} samples keeps none')
    del ids[keep:]
    ids = ids * math.ceil(num / keep)
    del ids[num:]
    return ids


def read_label_map(path: str, num_classes: int, backend: str = 'pillow',
                   backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a label PNG as ``(H, W)`` uint8 and check it; every error names ``path``.

    A 3-channel PNG whose channels are equal is accepted (its first channel is used); values must
    lie in ``0..num_classes - 1``.
    """
    try:
        content = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'label file {path} does not exist') from None
    try:
        label = mmcv.imfrombytes(content, flag='unchanged', backend=backend)
    except Exception as err:  # pillow raises UnidentifiedImageError, cv2 a cv2.error
        raise ValueError(f'label file {path} cannot be decoded as an image '
                         f'({type(err).__name__}: {err})') from err
    if label is None or label.size == 0:
        raise ValueError(f'label file {path} cannot be decoded as an image')
    label = np.asarray(label)
    if label.ndim == 3:
        if label.shape[2] == 1 or all(np.array_equal(label[..., 0], label[..., c])
                                      for c in range(1, label.shape[2])):
            label = label[..., 0]
        else:
            raise ValueError(f'label file {path} has {label.shape[2]} different channels; a '
                             'label map is a single-channel image of class values')
    if label.ndim != 2:
        raise ValueError(f'label file {path} has shape {label.shape}; expected (H, W)')
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError(f'label file {path} holds values outside 0..255 '
                             f'({label.min()}..{label.max()})')
        label = label.astype(np.uint8)
    values = np.unique(label)
    bad = values[values >= num_classes]
    if bad.size:
        raise ValueError(f'label file {path} holds values {bad.tolist()} outside the '
                         f'{num_classes} classes 0..{num_classes - 1}')
    return label


def finish_label(results: dict, label: np.ndarray, reduce_zero_label: Optional[bool]) -> dict:
    """Store ``label`` as ``gt_seg_map`` the way mmseg's ``LoadAnnotations`` does.

    Applies ``reduce_zero_label`` (transform argument, else the dataset's) and the dataset's
    ``label_map`` (custom ``metainfo`` classes), and appends to ``seg_fields``.
    """
    if reduce_zero_label is None:
        reduce_zero_label = results.get('reduce_zero_label', False)
    if reduce_zero_label != results.get('reduce_zero_label', reduce_zero_label):
        raise ValueError(f'the dataset has reduce_zero_label={results["reduce_zero_label"]} but '
                         f'the loading transform {reduce_zero_label}')
    label = label.copy()
    if reduce_zero_label:
        label[label == 0] = 255
        label = label - 1
        label[label == 254] = 255
    if results.get('label_map') is not None:
        original = label.copy()
        for old_id, new_id in results['label_map'].items():
            label[original == old_id] = new_id
    results['gt_seg_map'] = label
    results.setdefault('seg_fields', []).append('gt_seg_map')
    return results


def check_label_shape(results: dict, label: np.ndarray, path: str, scale: float = 1.0) -> None:
    """Raise if ``label`` is not ``scale`` times the loaded image (``ori_shape``)."""
    shape = results.get('ori_shape')
    if shape is None and results.get('img') is not None:
        shape = results['img'].shape[:2]
    if shape is None:
        return
    expected = tuple(int(round(s * scale)) for s in shape[:2])
    if tuple(label.shape[:2]) != expected:
        what = 'the image size' if scale == 1 else f'{scale:g} x the image size'
        raise ValueError(f'label {path} is {label.shape[1]}x{label.shape[0]} (WxH) but the image '
                         f'{results.get("img_path", "")} is {shape[1]}x{shape[0]}; expected '
                         f'{expected[1]}x{expected[0]} ({what})')


def add_sample_note(err: BaseException, data_info: dict) -> None:
    """Attach the sample's files to an exception raised by the pipeline (Python >= 3.11)."""
    add_note = getattr(err, 'add_note', None)
    if add_note is None:
        return
    files = [data_info.get(k) for k in ('img_path', 'seg_map_path') if data_info.get(k)]
    add_note(f'while loading the sample {", ".join(files) or data_info.get("sample_idx")}')


def explain_pipeline_error(err: Exception, data_info: dict) -> Optional[Exception]:
    """A clearer error for a pipeline failure, or None after noting the sample on ``err``.

    When the pipeline failed before the image was loaded and the image file is empty or does not
    decode (mmcv then raises a bare ``cv2.error`` or an assertion), say so, naming the file.
    """
    path = data_info.get('img_path')
    if (path and data_info.get('img') is None and not isinstance(err, FileNotFoundError)
            and osp.isfile(path)):
        if osp.getsize(path) == 0:
            return ValueError(f'image file {path} is empty')
        if cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
            return ValueError(f'image file {path} cannot be decoded (corrupt or not an image)')
    add_sample_note(err, data_info)
    return None


def prepare_with_context(dataset: BaseSegDataset, idx: int) -> Any:
    """``BaseDataset.prepare_data`` whose errors name the sample's files."""
    data_info = dataset.get_data_info(idx)
    try:
        return dataset.pipeline(data_info)
    except Exception as err:
        better = explain_pipeline_error(err, data_info)
        if better is not None:
            raise better from err
        raise


@TRANSFORMS.register_module()
class LoadLaPaAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` with the checks a LaPa label needs; errors name the file.

    The label at ``results['seg_map_path']`` must decode, be single-channel (or 3 equal
    channels), have the image's size when the image is already loaded, and hold values in
    ``0..num_classes - 1``. ``reduce_zero_label`` and a custom-class ``label_map`` apply as in
    mmseg.

    Required keys: ``seg_map_path``, ``reduce_zero_label``, ``seg_fields`` (from the dataset);
    ``ori_shape`` if the image was loaded. Added keys: ``gt_seg_map``.
    """

    def __init__(self, num_classes: int = len(LAPA_CLASSES), check_shape: bool = True,
                 reduce_zero_label: Optional[bool] = None, backend_args: Optional[dict] = None,
                 imdecode_backend: str = 'pillow') -> None:
        super().__init__(reduce_zero_label=reduce_zero_label, backend_args=backend_args,
                         imdecode_backend=imdecode_backend)
        self.num_classes = int(num_classes)
        self.check_shape = bool(check_shape)

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        label = read_label_map(path, self.num_classes, self.imdecode_backend, self.backend_args)
        if self.check_shape:
            check_label_shape(results, label, path)
        finish_label(results, label, self.reduce_zero_label)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'check_shape={self.check_shape}, imdecode_backend={self.imdecode_backend!r})')


@DATASETS.register_module()
class LaPaDataset(BaseSegDataset):
    """LaPa in its release layout, 11 classes in FaRL's order, 106 landmarks per sample.

    Every landmark file of the split is parsed when the dataset is built; images, labels and
    landmark files must pair up by name. Each sample carries ``img_path``, ``seg_map_path``,
    ``landmarks`` ((106, 2) float32, x y pixels), ``reduce_zero_label`` (False: background is a
    class, as in FaRL) and ``seg_fields``.

    Args:
        data_root: the folder holding ``train/``, ``val/``, ``test/``.
        split: ``'train'``, ``'val'`` or ``'test'`` (FaRL trains on train, tests on test).
        train_data_ratio: keep this fraction of the training split, chosen and repeated to the
            full length as FaRL does (:func:`farl_subsample_indices`). Samples are sorted by
            name first (FaRL takes ``os.listdir`` order, which depends on the file system), so
            the subset is deterministic. Only for ``split='train'``.
        pipeline, metainfo, test_mode, ...: as :class:`mmseg.datasets.BaseSegDataset`.

    Raises (when built): ``FileNotFoundError`` for a missing root or split folder and for an image
    without a label or landmark file (or the reverse); ``ValueError`` for a landmark file that is
    not ``106`` + 212 numbers, naming the file. A split whose image count differs from
    :data:`LAPA_SPLIT_SIZES` gives a ``UserWarning`` unless its names are the synthetic
    ``<split>_<index>`` ones.
    """

    METAINFO = dict(classes=LAPA_CLASSES, palette=[list(c) for c in LAPA_PALETTE],
                    swap_pairs=LAPA_SWAP_PAIRS)

    def __init__(self, data_root: str, split: str = 'train', train_data_ratio: float = 1.0,
                 img_suffix: str = '.jpg', seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False, **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f'LaPaDataset split must be one of {SPLITS}, got {split!r}')
        train_data_ratio = float(train_data_ratio)
        if not 0.0 < train_data_ratio <= 1.0:
            raise ValueError(f'train_data_ratio must be in (0, 1], got {train_data_ratio}')
        if train_data_ratio < 1.0 and split != 'train':
            raise ValueError(f'train_data_ratio={train_data_ratio} subsamples the training '
                             f'split; LaPaDataset(split={split!r}) must keep 1.0')
        if data_root is None:
            raise ValueError('LaPaDataset needs data_root (the folder holding train/ val/ test/)')
        self.split = split
        self.train_data_ratio = train_data_ratio
        super().__init__(data_root=data_root, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, reduce_zero_label=reduce_zero_label,
                         **kwargs)

    def _list(self, folder: str, suffix: str) -> Dict[str, str]:
        return {name[:-len(suffix)]: name for name in os.listdir(folder)
                if name.endswith(suffix) and not name.startswith('.')}

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'LaPa root {root} does not exist or is not a folder; {_DOC}')
        split_dir = osp.join(root, self.split)
        folders = {sub: osp.join(split_dir, sub) for sub in ('images', 'labels', 'landmarks')}
        for folder in (split_dir, *folders.values()):
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'LaPa {self.split} split: folder {folder} does not exist; the release '
                    f'layout is LaPa/{{train,val,test}}/{{images,labels,landmarks}} ({_DOC})')
        images = self._list(folders['images'], self.img_suffix)
        labels = self._list(folders['labels'], self.seg_map_suffix)
        marks = self._list(folders['landmarks'], '.txt')
        if not images:
            raise FileNotFoundError(f'LaPa {self.split} split: no *{self.img_suffix} image in '
                                    f'{folders["images"]} ({_DOC})')
        for what, files, folder, suffix in (('label', labels, 'labels', self.seg_map_suffix),
                                            ('landmark file', marks, 'landmarks', '.txt')):
            missing = sorted(set(images) - set(files))
            if missing:
                paths = [f'{osp.join(folders[folder], n + suffix)} (for '
                         f'{osp.join(folders["images"], images[n])})' for n in missing]
                raise FileNotFoundError(f'LaPa {self.split} split: {len(missing)} image(s) '
                                        f'without a {what}: missing {_listing(paths)}')
            orphans = sorted(set(files) - set(images))
            if orphans:
                paths = [osp.join(folders[folder], files[n]) for n in orphans]
                raise FileNotFoundError(
                    f'LaPa {self.split} split: {len(orphans)} {what}(s) without an image '
                    f'{osp.join(folders["images"], "<name>" + self.img_suffix)}: '
                    f'{_listing(paths)}')
        names = sorted(images)
        self._warn_count(names)

        data_list = []
        for name in names:
            data_list.append(dict(
                img_path=osp.join(folders['images'], images[name]),
                seg_map_path=osp.join(folders['labels'], labels[name]),
                landmarks=read_lapa_landmark_file(osp.join(folders['landmarks'], marks[name])),
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[]))
        if self.train_data_ratio < 1.0:
            data_list = [data_list[i] for i in
                         farl_subsample_indices(len(data_list), self.train_data_ratio)]
        return data_list

    def _warn_count(self, names: Sequence[str]) -> None:
        expected = LAPA_SPLIT_SIZES[self.split]
        synthetic = re.compile(rf'{self.split}_\d+')
        if len(names) == expected or all(synthetic.fullmatch(n) for n in names):
            return
        warnings.warn(f'LaPa {self.split} split in {self.data_root} has {len(names)} images; the '
                      f'release has {expected} (farl_protocol.md §6.2): numbers will not be '
                      f'comparable with FaRL\'s. Is the download complete? ({_DOC})',
                      UserWarning, stacklevel=2)

    def prepare_data(self, idx: int) -> Any:
        return prepare_with_context(self, idx)
