"""Turning raw sample bytes into the data contract, and counting the samples that cannot be.

Pre-training corpora are scraped: a few images in a million do not decode and some captions are
empty. The streaming and list datasets of :mod:`faceanalysis.datasets.pretrain` skip such samples
instead of crashing a multi-day run, and count every skip with a :class:`SkipCounter` so that the
numbers are visible (``dataset.skip_counts()``) and a broken corpus is noticed.

Images are decoded with OpenCV (``cv2.imdecode``), the decoder our stack already has; neither PIL
nor torchvision's readers are needed. ``cv2.IMREAD_COLOR`` always gives 8-bit, 3-channel BGR,
which we turn to RGB:

* grayscale images are replicated to three channels;
* an alpha channel is dropped (the colour values are kept, not composited), as PIL's
  ``convert('RGB')`` in open_clip's loader does;
* CMYK / YCCK JPEGs are converted by libjpeg;
* 16-bit PNG/TIFF are scaled to 8 bit;
* the EXIF orientation is applied unless ``apply_exif_orientation=False`` (OpenCV's default; PIL
  and torchvision's ``read_image`` leave it, so turn it off to see the pixels those references
  trained on).
"""
from __future__ import annotations

import multiprocessing
from typing import Dict, Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import MMLogger
from torch.utils.data import get_worker_info

__all__ = ['ImageDecodeError', 'decode_image_rgb', 'decode_caption', 'SkipCounter']


class ImageDecodeError(ValueError):
    """The bytes of an image could not be decoded (corrupt, truncated or an unknown format)."""


def decode_image_rgb(data: bytes, apply_exif_orientation: bool = True) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, WebP, BMP, TIFF ...) to RGB.

    Args:
        data: the encoded file's bytes.
        apply_exif_orientation: rotate/flip as the EXIF orientation tag says.

    Returns:
        np.uint8 array (H, W, 3), RGB, C-contiguous.

    Raises:
        ImageDecodeError: empty input, bytes OpenCV cannot decode, or an image too large for
            OpenCV's pixel limit.
    """
    if not data:
        raise ImageDecodeError('empty image bytes')
    flags = cv2.IMREAD_COLOR
    if not apply_exif_orientation:
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        bgr = cv2.imdecode(buffer, flags)
    except cv2.error as error:  # e.g. more pixels than CV_IO_MAX_IMAGE_PIXELS
        raise ImageDecodeError(f'OpenCV could not decode the image: {error}') from error
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(f'OpenCV could not decode {len(data)} bytes as an image')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_caption(data: bytes) -> str:
    """UTF-8 caption bytes to a ``str`` without surrounding whitespace.

    Undecodable bytes become U+FFFD instead of failing: one bad byte does not make a caption
    useless, and the CLIP tokenizer cleans text anyway.
    """
    return data.decode('utf-8', errors='replace').strip()


class SkipCounter:
    """Counts skipped samples per reason, across DataLoader worker processes.

    The counts live in shared memory (``multiprocessing.RawArray``) created with the dataset in
    the main process; DataLoader workers receive it with the dataset, by fork or (``spawn``,
    ``forkserver``) by pickling at start, so the main process reads what the workers counted.
    Each process writes its own row (the main process row 0, worker ``w`` row ``1 + w``), so
    increments need no lock (a lock would tie the array to one start method); :meth:`counts`
    sums the rows. Workers beyond ``max_workers`` share rows, where two simultaneous
    increments could lose one.

    The first ``log_first`` occurrences of each reason (over all processes, give or take a
    concurrent one) are logged as warnings with MMEngine's current logger; later ones are only
    counted.

    Args:
        reasons: the reasons that can be counted.
        owner: a name that prefixes the log messages (the dataset class).
        log_first: how many occurrences of each reason are logged.
        max_workers: DataLoader workers with a row of their own.
    """

    def __init__(self, reasons: Sequence[str], owner: str, log_first: int = 5,
                 max_workers: int = 64) -> None:
        self.reasons = tuple(reasons)
        self.owner = owner
        self.log_first = int(log_first)
        self._index = {reason: i for i, reason in enumerate(self.reasons)}
        self._rows = 1 + int(max_workers)
        self._counts = multiprocessing.RawArray('q', self._rows * len(self.reasons))  # int64

    def _row(self) -> int:
        info = get_worker_info()
        return 0 if info is None else 1 + info.id % (self._rows - 1)

    def _total(self, index: int) -> int:
        width = len(self.reasons)
        return sum(self._counts[row * width + index] for row in range(self._rows))

    def add(self, reason: str, message: Optional[str] = None, count: int = 1) -> int:
        """Count ``count`` occurrences of ``reason``; log ``message`` (if given) while the
        total is still among the first ``log_first``.

        Returns:
            The new total of ``reason`` over all processes.
        """
        index = self._index.get(reason)
        if index is None:
            raise KeyError(f'unknown skip reason {reason!r}; known: {self.reasons}')
        self._counts[self._row() * len(self.reasons) + index] += count
        total = self._total(index)
        if message is not None and total - count < self.log_first:
            more = ' (later ones are only counted)' if total >= self.log_first else ''
            MMLogger.get_current_instance().warning(
                f'{self.owner}: skipped {reason} #{total}: {message}{more}')
        return total

    def counts(self) -> Dict[str, int]:
        """``{reason: count}`` for every reason, summed over all processes so far."""
        return {reason: self._total(index) for reason, index in self._index.items()}

    def __deepcopy__(self, memo: dict) -> 'SkipCounter':
        # Shared memory cannot be deep-copied; a copied dataset (e.g. MMEngine's get_subset)
        # counts into the same array, which is what a reader of the counts expects.
        return self
