"""HRNet's face-landmark CSVs (300W, WFLW), as FaRL reads them (farl_protocol.md §3.2, §6).

HRNet-Facial-Landmark-Detection ships ``data/{300w,wflw}/face_landmarks_*.csv``. The first line is
a header (``image_name,scale,center_w,center_h,original_0_x,original_0_y,...``); HRNet reads the
files with ``pandas.read_csv`` (first line = column names) and FaRL skips the first line. Every
other line is one face::

    image_name, scale, center_w, center_h, x0, y0, x1, y1, ..., x{K-1}, y{K-1}

``image_name`` is relative to the dataset folder (300W: ``ibug/image_003_1.jpg``,
``helen/trainset/...``; WFLW: relative to ``WFLW_images/``). The face box is the square of side
``200 * scale`` centred on ``(center_w, center_h)``: FaRL's ``box`` (y1, x1, y2, x2) is
``[ch - 100 s, cw - 100 s, ch + 100 s, cw + 100 s]``, here returned as x1, y1, x2, y2.

Like FaRL, blank lines and lines starting with ``#`` are skipped. A first line whose ``scale``
field is not a number is the header; a file whose first line already is a face (no header)
is read in full with a warning (HRNet and FaRL would drop that face as a header).
"""
from __future__ import annotations

import math
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import Iterable, List, Tuple

import numpy as np

from .base import DOC, FaceLandmarkDataset

__all__ = ['HRNetCSVRow', 'read_hrnet_csv', 'write_hrnet_csv', 'hrnet_box_xyxy',
           'hrnet_csv_header', 'HRNetCSVDataset']

#: HRNet's boxes are ``scale`` x 200 pixels (``pixel_std``).
PIXEL_STD = 200.0


@dataclass
class HRNetCSVRow:
    """One face of an HRNet CSV (values as in the file, no offset applied)."""
    image_name: str
    scale: float
    center_w: float
    center_h: float
    landmarks: np.ndarray  # (K, 2) float64 x, y
    line: int  # 1-based line number in the file


def hrnet_box_xyxy(scale: float, center_w: float, center_h: float) -> np.ndarray:
    """FaRL's GT box of an HRNet row, x1, y1, x2, y2: the square of side 200·scale."""
    half = 0.5 * PIXEL_STD * float(scale)
    return np.array([center_w - half, center_h - half, center_w + half, center_h + half],
                    dtype=np.float64)


def hrnet_csv_header(num_points: int) -> str:
    cols = ['image_name', 'scale', 'center_w', 'center_h']
    for i in range(num_points):
        cols += [f'original_{i}_x', f'original_{i}_y']
    return ','.join(cols)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_hrnet_csv(path: str, num_points: int, dataset: str = 'HRNet') -> List[HRNetCSVRow]:
    """Parse an HRNet landmark CSV; every error names the file and its line.

    Args:
        path: the CSV file.
        num_points: landmarks per row (68 for 300W, 98 for WFLW).
        dataset: name used in messages.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a row with another number of coordinates than ``2 * num_points``, a value
            that is not a number, or an empty file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{dataset} annotation file {path} does not exist; expected '
                                f'HRNet\'s CSV there ({DOC})')
    expected = 2 * num_points
    rows: List[HRNetCSVRow] = []
    first = True
    with open(path, newline='') as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            fields = [v.strip() for v in line.split(',')]
            if first:
                first = False
                if len(fields) < 2 or not _is_number(fields[1]):
                    continue  # the header row (image_name,scale,center_w,...)
                warnings.warn(f'{path} has no header row: line {line_no} is read as a face '
                              '(HRNet and FaRL would skip it as the header)', UserWarning,
                              stacklevel=2)
            if len(fields) < 4:
                raise ValueError(f'{path}, line {line_no}: {len(fields)} field(s); expected '
                                 f'image_name, scale, center_w, center_h and {expected} '
                                 f'coordinates ({num_points} points)')
            name, coords = fields[0], fields[4:]
            if len(coords) != expected:
                raise ValueError(f'{path}, line {line_no} ({name}): {len(coords)} coordinates '
                                 f'after image_name, scale, center_w, center_h; expected '
                                 f'{expected} ({num_points} points x, y)')
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                bad = next(v for v in fields[1:] if not _is_number(v))
                raise ValueError(f'{path}, line {line_no} ({name}): {bad!r} is not a number') \
                    from None
            scale, cw, ch = values[:3]
            if not all(math.isfinite(v) for v in (scale, cw, ch)):
                raise ValueError(f'{path}, line {line_no} ({name}): NaN or infinite value in the '
                                 f'box (scale={scale}, center_w={cw}, center_h={ch})')
            if scale <= 0:
                raise ValueError(f'{path}, line {line_no} ({name}): scale must be positive, got '
                                 f'{scale}')
            landmarks = np.asarray(values[3:], dtype=np.float64).reshape(num_points, 2)
            if not np.all(np.isfinite(landmarks)):
                bad = sorted(set(np.nonzero(~np.isfinite(landmarks))[0].tolist()))
                raise ValueError(f'{path}, line {line_no} ({name}): landmark(s) {bad[:10]} are '
                                 'NaN or infinite')
            rows.append(HRNetCSVRow(name, scale, cw, ch, landmarks, line_no))
    if not rows:
        raise ValueError(f'{dataset} annotation file {path} holds no face rows')
    return rows


def _fmt(value: float) -> str:
    return f'{float(value):.6f}'


def write_hrnet_csv(path: str, rows: Iterable[Tuple[str, float, float, float, np.ndarray]],
                    num_points: int) -> None:
    """Write ``(image_name, scale, center_w, center_h, landmarks (K, 2))`` rows with HRNet's
    header (used by the synthetic generators; values with 6 decimals)."""
    lines = [hrnet_csv_header(num_points)]
    for name, scale, cw, ch, landmarks in rows:
        if ',' in name:
            raise ValueError(f'image name {name!r} contains a comma')
        landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
        if len(landmarks) != num_points:
            raise ValueError(f'{name}: {len(landmarks)} landmarks, expected {num_points}')
        values = [_fmt(scale), _fmt(cw), _fmt(ch)] + [_fmt(v) for v in landmarks.reshape(-1)]
        lines.append(','.join([name] + values))
    with open(path, 'w', newline='') as f:
        f.write('\n'.join(lines) + '\n')


class HRNetCSVDataset(FaceLandmarkDataset):
    """Base of the CSV-backed datasets: reads ``CSV_FILES[split]`` under ``data_root``.

    Subclasses set ``CSV_FILES`` (split -> tuple of CSV names, read in order), ``OFFSET``
    (pixels subtracted from landmarks and box centre: 2.0 for 300W, as FaRL) and ``IMAGE_DIR``
    (folder of the images under ``data_root``), and may override :meth:`resolve_image`,
    :meth:`sample_name` and :meth:`subset_tags`.
    """

    CSV_FILES: dict = {}
    OFFSET = 0.0
    IMAGE_DIR = ''

    def csv_path(self, name: str) -> str:
        return osp.join(self.data_root, name)

    def resolve_image(self, image_name: str, where: str) -> Tuple[str, str]:
        """(absolute image path, image name as used for the sample name)."""
        return osp.join(self.data_root, self.IMAGE_DIR, image_name), image_name

    def sample_name(self, image_name: str, landmarks: np.ndarray) -> str:
        return osp.splitext(image_name)[0].replace('/', '_')

    def subset_tags(self, csv_name: str, row: HRNetCSVRow) -> Tuple[str, ...]:
        """The sample's ``subset`` (named evaluation subsets, FaRL's names)."""
        return ()

    def load_raw_samples(self) -> List[dict]:
        samples = []
        for csv_name in self.CSV_FILES[self.split]:
            path = self.csv_path(csv_name)
            for row in read_hrnet_csv(path, self.num_points, self.DATASET):
                where = f'{path}, line {row.line} ({row.image_name})'
                img_path, name = self.resolve_image(row.image_name, where)
                # FaRL: float(v) - 2.0 in double precision, then float32 (make_sample)
                landmarks = row.landmarks - self.OFFSET
                box = hrnet_box_xyxy(row.scale, row.center_w - self.OFFSET,
                                     row.center_h - self.OFFSET)
                samples.append(self.make_sample(
                    img_path, landmarks, box, where=where, ann_file=path, ann_index=row.line,
                    sample_name=self.sample_name(name, landmarks),
                    subset=self.subset_tags(csv_name, row)))
        return samples
