"""Synthetic face-alignment datasets in the real on-disk formats of 300W, WFLW and AFLW-19.

Every face comes from :func:`~faceanalysis.datasets.synthetic.render_synthetic_face`, whose 106
LaPa-scheme points (contour, brows, nose, eyes, lips, pupils) are mapped to each dataset's scheme
(:data:`LAPA_TO_300W`, :data:`LAPA_TO_WFLW`, :func:`lapa106_to_aflw19`). The mapping keeps each
scheme's semantics and order where the synthetic face has the feature (iBUG 68: jaw, brows, nose
bridge, nostrils, 6-point eyes, 12 + 8 lip points; WFLW 98: the LaPa layout without the extra
nostril points and eye centres; AFLW-19: brows outer/middle/inner, eye corners and centres,
nostrils and tip, mouth corners and centre, chin), so inter-ocular ids (300W 36/45, WFLW 60/72,
AFLW 6/11) are the outer eye corners and the flip pairs of the readers hold. Points are in image
coordinates ("left" = image left), like LaPa's.

Layouts (the readers in :mod:`faceanalysis.datasets.alignment` read them as the releases)::

    300W  root/{afw, helen/trainset, lfpw/trainset}/synthetic_train_<i>.{jpg,png}   train
          root/{helen/testset, lfpw/testset}/synthetic_common_<i>.{jpg,png}          common
          root/ibug/synthetic_challenging_<i>.jpg                                    challenging
          root/face_landmarks_300w_{train,valid_common,valid_challenge}.csv
    WFLW  root/WFLW_images/<event folder>/synthetic_<split>_<i>.jpg
          root/face_landmarks_wflw_{train,test,test_<subset>}.csv
    AFLW  root/data/flickr/{0,2,3}/synthetic_image<i>.jpg
          root/AFLWinfo_release.mat  (data, bbox, ra, mask_new, nameList; scipy.io.savemat)

CSV boxes are HRNet's ``scale, center_w, center_h`` of a square about 1.0-1.1 times the larger side
of the landmarks' extent; the 300W CSVs hold the landmarks and centre **plus 2 px**, so that
FaRL's -2 px offset gives back the drawn positions. With ``quirk=True`` the first challenging
300W face is stored as ``ibug/image_092 _01.jpg`` and listed as ``ibug/image_092_01.jpg``, as in
the release. WFLW test faces are spread over the six subset CSVs (each subset at least one face;
a face may be in several). AFLW's ``ra`` is a random permutation whose first ``train`` entries
are the training faces: build :class:`~faceanalysis.datasets.AFLW19Dataset` with
``num_train=<train count>``. Half of the AFLW test faces are frontal (all 19 ``mask_new`` 1), the
others have 1-4 hidden points; AFLW boxes are (left, right, top, bottom), not square.

Importing this module adds ``'300w'``, ``'wflw'`` and ``'aflw19'`` to
:data:`~faceanalysis.datasets.synthetic.SYNTHETIC_MAKERS` (``prepare_synthetic_data``,
``tools/misc/make_synthetic_data.py``). Their ``num_images`` also accepts that tool's generic
keys: ``test`` sets every test split, ``val`` is ignored (no validation split in these releases).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from .alignment.aflw19 import AFLW19_IMAGE_DIR, AFLW19_MAT_FILE
from .alignment.hrnet_csv import PIXEL_STD, write_hrnet_csv
from .alignment.ibug300w import IBUG300W_CSV_FILES, IBUG300W_QUIRK_PATHS
from .alignment.wflw import WFLW_CSV_FILES, WFLW_SUBSETS
from .synthetic import SYNTHETIC_MAKERS, render_synthetic_face

__all__ = ['make_synthetic_300w', 'make_synthetic_wflw', 'make_synthetic_aflw19',
           'LAPA_TO_300W', 'LAPA_TO_WFLW', 'lapa106_to_aflw19', 'render_alignment_face']

_NOSTRILS = [56, 58, 60, 62, 64]  # 5 of LaPa's 11 nostril-line points (60 = the middle)
#: LaPa-106 index of each iBUG-68 point (jaw every other contour point, upper brow arcs, ...).
LAPA_TO_300W = np.array(
    list(range(0, 33, 2))            # 0-16 jaw (8 = chin = LaPa 16)
    + list(range(33, 38))            # 17-21 left brow outer -> inner
    + list(range(42, 47))            # 22-26 right brow inner -> outer
    + list(range(51, 55))            # 27-30 nose bridge, 30 = tip
    + _NOSTRILS                      # 31-35 nostrils left -> right
    + [66, 67, 69, 70, 71, 73]       # 36-41 left eye: outer, upper lid x2, inner, lower lid x2
    + [75, 76, 78, 79, 80, 82]       # 42-47 right eye: inner, upper lid x2, outer, lower lid x2
    + list(range(84, 96))            # 48-59 outer lips (48 / 54 corners)
    + list(range(96, 104)))          # 60-67 inner lips (60 / 64 corners)
#: LaPa-106 index of each WFLW-98 point (the same layout minus 6 nostril points, eye centres).
LAPA_TO_WFLW = np.array(
    list(range(0, 55))               # 0-32 contour, 33-50 brows, 51-54 nose bridge
    + _NOSTRILS                      # 55-59
    + list(range(66, 74))            # 60-67 left eye (60 outer corner)
    + list(range(75, 83))            # 68-75 right eye (72 outer corner)
    + list(range(84, 104))           # 76-95 lips
    + [104, 105])                    # 96, 97 pupils
assert len(LAPA_TO_300W) == 68 and len(LAPA_TO_WFLW) == 98


def lapa106_to_aflw19(points: np.ndarray) -> np.ndarray:
    """AFLW-19 points from LaPa-106 ones (the mouth centre is the middle of the inner lips)."""
    points = np.asarray(points, dtype=np.float64)
    idx = [33, 35, 37, 42, 44, 46,      # brows: outer, middle, inner | inner, middle, outer
           66, 74, 70, 75, 83, 79,      # eyes: outer, centre, inner | inner, centre, outer
           56, 54, 64,                  # nose: left nostril, tip, right nostril
           84, 0, 90,                   # mouth: left corner, (centre below), right corner
           16]                          # chin
    out = points[idx].copy()
    out[16] = 0.5 * (points[98] + points[102])
    return out


def render_alignment_face(rng: np.random.Generator, kind: str,
                          image_size: int = 128) -> Tuple[np.ndarray, np.ndarray]:
    """One synthetic face: ``image`` (S, S, 3) uint8 RGB and its (K, 2) points for ``kind``
    (``'300w'``, ``'wflw'`` or ``'aflw19'``)."""
    image, _, lapa = render_synthetic_face(rng, image_size)
    if kind == '300w':
        points = lapa[LAPA_TO_300W]
    elif kind == 'wflw':
        points = lapa[LAPA_TO_WFLW]
    elif kind == 'aflw19':
        points = lapa106_to_aflw19(lapa)
    else:
        raise ValueError(f'unknown kind {kind!r}; use 300w, wflw or aflw19')
    return image, points


def _counts(num_images: Optional[Mapping[str, int]], defaults: Dict[str, int],
            test_splits: Sequence[str], dataset: str) -> Dict[str, int]:
    counts = dict(defaults)
    for key, value in (num_images or {}).items():
        if key == 'val':
            continue  # the generic tool's key; these releases have no validation split
        if key == 'test' and 'test' not in defaults:
            counts.update({s: int(value) for s in test_splits})
        elif key in defaults:
            counts[key] = int(value)
        else:
            raise ValueError(f'unknown {dataset} split {key!r}; use {tuple(defaults)} (or the '
                             'generic test / val)')
    if any(v < 0 for v in counts.values()):
        raise ValueError(f'negative image count in {counts}')
    return counts


def _check_size(image_size: int) -> None:
    if image_size < 48:  # below that the synthetic lips are sub-pixel (synthetic.py)
        raise ValueError(f'image_size must be at least 48, got {image_size}')


def _write_image(path: str, image: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write {path}')


def _hrnet_box(rng: np.random.Generator, points: np.ndarray) -> Tuple[float, float, float]:
    """``scale, center_w, center_h`` of a square box around ``points``."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    side = float(np.max(hi - lo)) * rng.uniform(1.0, 1.1)
    centre = 0.5 * (lo + hi) + rng.uniform(-0.03, 0.03, 2) * side
    return side / PIXEL_STD, float(centre[0]), float(centre[1])


class _Progress:

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit='img')

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------------
# 300W
# ------------------------------------------------------------------------------------------------
_300W_FOLDERS = {'train': ('afw', 'helen/trainset', 'lfpw/trainset'),
                 'common': ('helen/testset', 'lfpw/testset'),
                 'challenging': ('ibug', )}
_300W_OFFSET = 2.0  # FaRL subtracts it when reading (farl_protocol.md §3.2)


def make_synthetic_300w(root: str, num_images: Optional[Mapping[str, int]] = None,
                        image_size: int = 128, seed: int = 0, quirk: bool = True,
                        progress: bool = False) -> str:
    """Write a synthetic 300W: images in the release folders plus HRNet's three CSVs.

    Args:
        root: output folder (created).
        num_images: faces per split; defaults ``{'train': 16, 'common': 4, 'challenging': 4}``.
        image_size: side of the square images (at least 48).
        seed: base seed; face ``i`` of split ``s`` uses ``default_rng([seed, 300, s, i])``.
        quirk: store the first challenging face as ``ibug/image_092 _01.jpg`` (CSV:
            ``ibug/image_092_01.jpg``), as the release does.
        progress: show a tqdm bar.

    Returns:
        ``root``.
    """
    counts = _counts(num_images, {'train': 16, 'common': 4, 'challenging': 4},
                     ('common', 'challenging'), '300W')
    _check_size(image_size)
    bar = _Progress(progress, sum(counts.values()), f'synthetic 300W -> {root}')
    (csv_quirk, file_quirk), = IBUG300W_QUIRK_PATHS.items()
    for split_id, split in enumerate(('train', 'common', 'challenging')):
        rows = []
        folders = _300W_FOLDERS[split]
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, 300, split_id, index])
            image, points = render_alignment_face(rng, '300w', image_size)
            folder = folders[index % len(folders)]
            ext = '.png' if folder.startswith('lfpw') else '.jpg'
            csv_name = file_name = f'{folder}/synthetic_{split}_{index:05d}{ext}'
            if quirk and split == 'challenging' and index == 0:
                csv_name, file_name = csv_quirk, file_quirk
            _write_image(osp.join(root, file_name), image)
            scale, cw, ch = _hrnet_box(rng, points)
            rows.append((csv_name, scale, cw + _300W_OFFSET, ch + _300W_OFFSET,
                         points + _300W_OFFSET))
            bar.update()
        write_hrnet_csv(osp.join(root, IBUG300W_CSV_FILES[split][0]), rows, 68)
    bar.close()
    return root


# ------------------------------------------------------------------------------------------------
# WFLW
# ------------------------------------------------------------------------------------------------
_WFLW_EVENTS = ('0--Parade', '1--Handshaking', '2--Demonstration', '3--Riot', '4--Dancing')


def make_synthetic_wflw(root: str, num_images: Optional[Mapping[str, int]] = None,
                        image_size: int = 128, seed: int = 0, progress: bool = False) -> str:
    """Write a synthetic WFLW: ``WFLW_images/<event>/`` plus HRNet's eight CSVs.

    Args:
        root: output folder (created).
        num_images: faces per split; defaults ``{'train': 16, 'test': 8}``. Test face ``j`` is
            in subset ``WFLW_SUBSETS[j % 6]``, in subset ``s`` if ``s % test == j`` (so every
            subset has a face) and in each other subset with probability 0.25.
        image_size, seed, progress: as :func:`make_synthetic_300w` (rng tag 98).

    Returns:
        ``root``.
    """
    counts = _counts(num_images, {'train': 16, 'test': 8}, ('test', ), 'WFLW')
    _check_size(image_size)
    if counts['test'] < 1:
        raise ValueError('WFLW needs at least one test face (the six subset CSVs are cut from it)')
    bar = _Progress(progress, sum(counts.values()), f'synthetic WFLW -> {root}')
    subset_rows: Dict[str, List[tuple]] = {s: [] for s in WFLW_SUBSETS}
    n_test = counts['test']
    for split_id, split in enumerate(('train', 'test')):
        rows = []
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, 98, split_id, index])
            image, points = render_alignment_face(rng, 'wflw', image_size)
            name = f'{_WFLW_EVENTS[index % len(_WFLW_EVENTS)]}/synthetic_{split}_{index:05d}.jpg'
            _write_image(osp.join(root, 'WFLW_images', name), image)
            row = (name, *_hrnet_box(rng, points), points)
            rows.append(row)
            if split == 'test':
                for k, subset in enumerate(WFLW_SUBSETS):
                    if k % n_test == index or k == index % 6 or rng.random() < 0.25:
                        subset_rows[subset].append(row)
            bar.update()
        write_hrnet_csv(osp.join(root, WFLW_CSV_FILES[split][0]), rows, 98)
    for subset, rows in subset_rows.items():
        write_hrnet_csv(osp.join(root, WFLW_CSV_FILES[f'test_{subset}'][0]), rows, 98)
    bar.close()
    return root


# ------------------------------------------------------------------------------------------------
# AFLW-19
# ------------------------------------------------------------------------------------------------
def make_synthetic_aflw19(root: str, num_images: Optional[Mapping[str, int]] = None,
                          image_size: int = 128, seed: int = 0, progress: bool = False) -> str:
    """Write a synthetic AFLW-19: ``data/flickr/{0,2,3}/`` plus ``AFLWinfo_release.mat``.

    Args:
        root: output folder (created).
        num_images: ``{'train': 16, 'test': 8}`` by default; read the result with
            ``AFLW19Dataset(num_train=<train>)``.
        image_size, seed, progress: as :func:`make_synthetic_300w` (rng tag 19). Test faces at
            even positions of the permutation are frontal.

    Returns:
        ``root``.
    """
    import scipy.io

    counts = _counts(num_images, {'train': 16, 'test': 8}, ('test', ), 'AFLW-19')
    _check_size(image_size)
    n_train, n = counts['train'], counts['train'] + counts['test']
    if n < 1:
        raise ValueError('AFLW-19 needs at least one face')
    meta = np.random.default_rng([seed, 19, 1000])
    ra = meta.permutation(n) + 1  # 1-based, as in the release
    position = np.empty(n, dtype=np.int64)
    position[ra - 1] = np.arange(n)  # where each face sits in the permutation
    data = np.zeros((n, 38))
    bbox = np.zeros((n, 4))
    mask = np.ones((n, 19))
    cells = np.empty((n, 1), dtype=object)
    bar = _Progress(progress, n, f'synthetic AFLW-19 -> {root}')
    for face in range(n):
        rng = np.random.default_rng([seed, 19, face])
        image, points = render_alignment_face(rng, 'aflw19', image_size)
        name = f'{(0, 2, 3)[face % 3]}/synthetic_image{face:05d}.jpg'
        _write_image(osp.join(root, AFLW19_IMAGE_DIR, name), image)
        cells[face, 0] = name
        data[face] = np.concatenate([points[:, 0], points[:, 1]])
        lo, hi = points.min(axis=0), points.max(axis=0)
        w, h = hi - lo
        margin = rng.uniform(0.05, 0.2, 4) * [w, w, h, h]
        bbox[face] = [lo[0] - margin[0], hi[0] + margin[1], lo[1] - margin[2] - 0.2 * h,
                      hi[1] + margin[3]]  # left, right, top, bottom
        pos = position[face]
        hidden = (pos >= n_train and (pos - n_train) % 2 == 1) or (pos < n_train
                                                                   and rng.random() < 0.5)
        if hidden:
            mask[face, rng.choice(19, size=int(rng.integers(1, 5)), replace=False)] = 0
        bar.update()
    os.makedirs(root, exist_ok=True)
    scipy.io.savemat(osp.join(root, AFLW19_MAT_FILE),
                     dict(data=data, bbox=bbox, ra=ra.reshape(1, n).astype(np.float64),
                          mask_new=mask, nameList=cells))
    bar.close()
    return root


SYNTHETIC_MAKERS.setdefault('300w', make_synthetic_300w)
SYNTHETIC_MAKERS.setdefault('wflw', make_synthetic_wflw)
SYNTHETIC_MAKERS.setdefault('aflw19', make_synthetic_aflw19)
