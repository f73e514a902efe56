"""Image-only face crops for MCF pre-training, in the real file formats (pretrain.md §3.3).

* :func:`write_image_folder`: torchvision's ImageFolder layout (``root/<class>/<name>.jpg``), the
  form ``ImageFolderImages`` reads;
* :func:`write_lmdb_images` / :func:`write_lmdb_bytes`: MCF's LAION-FACE-cropped LMDB (a ``length``
  key, JPEG bytes under keys listed one per line in a companion text file), read by
  ``LMDBImages``.

The faces are :func:`~faceanalysis.datasets.synthetic.render_synthetic_face` drawings with random
pose, skin and hair, deterministic from ``(seed, index)``. ``prepare_synthetic_data`` knows them as
``kind='face_crops'`` (:func:`make_synthetic_face_crops`).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .synthetic import SYNTHETIC_MAKERS, render_synthetic_face
from .synthetic_image_text import _atomic_write, _check_count, _counts, encode_jpeg

__all__ = ['write_image_folder', 'write_lmdb_bytes', 'write_lmdb_images',
           'make_synthetic_face_crops']

FACE_STREAM = 100  # seed component of the face crops, apart from the toy corpus' splits


def _face_crop(seed: int, index: int, size: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed), FACE_STREAM, int(index)])
    image, _, _ = render_synthetic_face(rng, size)
    return image


def write_image_folder(root: str, num_images: int, seed: int = 0, size: int = 64,
                       classes: Sequence[str] = ('faces',)) -> List[str]:
    """Write synthetic square face crops in torchvision's ImageFolder layout.

    Layout: ``root/<class>/{index:06d}.jpg``; image ``i`` goes to ``classes[i % len(classes)]``
    (MCF ignores the class, but ImageFolder needs at least one class folder). The faces come from
    :func:`~faceanalysis.datasets.synthetic.render_synthetic_face` (random pose, skin, hair,
    background), seeded with ``default_rng([seed, 100, i])``.

    Returns:
        The image paths, in index order.
    """
    num_images = _check_count('num_images', num_images, 1)
    if not classes or any(not c or '/' in c or c.startswith('.') for c in classes):
        raise ValueError(f'classes must be non-empty folder names, got {classes!r}')
    paths = []
    for index in range(num_images):
        folder = osp.join(root, classes[index % len(classes)])
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'{index:06d}.jpg')
        _atomic_write(path, encode_jpeg(_face_crop(seed, index, size)))
        paths.append(path)
    return paths


def write_lmdb_bytes(lmdb_path: str, entries: Iterable[Tuple[str, bytes]], keys_file: str,
                     length: Optional[int] = None) -> Tuple[str, str]:
    """Write an LMDB in MCF's layout from ``(key, image bytes)`` pairs.

    MCF's ``LMDBImageDataset`` (pretrain.md §3.3) reads ``int(txn.get(b'length').decode())`` and
    the image bytes of ``keys[i].encode('utf-8')``, where ``keys`` are the stripped lines of
    ``--lmdb_txt``. What is **our assumption**, not known from MCF: the env is a directory
    (LMDB's default ``subdir=True``: ``data.mdb``, ``lock.mdb``), keys are plain names without
    spaces, the values are encoded image files (JPEG here), and the keys file lists the keys in
    dataset order with one trailing newline.

    Args:
        lmdb_path: the env directory (created; an existing env there is overwritten).
        entries: the keys and encoded images, in dataset order.
        keys_file: the companion text file (MCF's ``--lmdb_txt``).
        length: value stored under ``b'length'``; the number of entries when None (tests pass
            a wrong one to check the reader's error).

    Returns:
        ``(lmdb_path, keys_file)``.
    """
    lmdb = _import_lmdb()
    entries = [(str(key), bytes(data)) for key, data in entries]
    keys = [key for key, _ in entries]
    bad = [key for key in keys if not key or key != key.strip() or '\n' in key]
    if bad:
        raise ValueError(f'LMDB keys must be non-empty single-line names without surrounding '
                         f'whitespace (the keys file is read line by line); got {bad[:5]}')
    if len(set(keys)) != len(keys) or 'length' in keys:
        raise ValueError('LMDB keys must be unique and must not be "length"')
    if osp.isdir(lmdb_path):
        shutil.rmtree(lmdb_path)
    os.makedirs(lmdb_path)
    map_size = 2 * sum(len(key) + len(data) + 64 for key, data in entries) + (1 << 20)
    env = lmdb.open(lmdb_path, map_size=map_size, subdir=True)
    try:
        with env.begin(write=True) as txn:
            for key, data in entries:
                txn.put(key.encode('utf-8'), data)
            count = len(entries) if length is None else int(length)
            txn.put(b'length', str(count).encode('ascii'))
    finally:
        env.close()
    folder = osp.dirname(osp.abspath(keys_file))
    os.makedirs(folder, exist_ok=True)
    _atomic_write(keys_file, ''.join(f'{key}\n' for key in keys).encode('utf-8'))
    return lmdb_path, keys_file


def write_lmdb_images(lmdb_path: str, num_images: int, seed: int = 0, size: int = 64,
                      keys_file: Optional[str] = None) -> Tuple[str, str]:
    """Write the faces of :func:`write_image_folder` (same arguments, same faces) into an
    MCF-layout LMDB (:func:`write_lmdb_bytes`) with keys ``{index:09d}.jpg``; ``keys_file``
    defaults to ``<lmdb_path>_keys.txt``. Returns ``(lmdb_path, keys_file)``."""
    num_images = _check_count('num_images', num_images, 1)
    if keys_file is None:
        keys_file = osp.abspath(lmdb_path).rstrip(os.sep) + '_keys.txt'
    entries = ((f'{index:09d}.jpg', encode_jpeg(_face_crop(seed, index, size)))
               for index in range(num_images))
    return write_lmdb_bytes(lmdb_path, entries, keys_file)


def _import_lmdb():
    try:
        import lmdb
    except ImportError as err:
        raise ImportError('writing or reading an LMDB needs the optional package lmdb: '
                          '`pip install lmdb` (requirements/optional.txt)') from err
    return lmdb


def make_synthetic_face_crops(root: str, num_images: Union[None, int, Mapping[str, int]] = None,
                              image_size: int = 64, seed: int = 0, progress: bool = False,
                              classes: Sequence[str] = ('faces',)) -> str:
    """:func:`write_image_folder` with the writer signature of ``SYNTHETIC_MAKERS``.

    ``num_images`` is a count, or a dict whose ``train`` entry is used (default 32).
    """
    write_image_folder(root, _counts(num_images, 'train', 32), seed=seed, size=image_size,
                       classes=classes)
    return root


#: ``synthetic_data['kind']`` -> writer (see :func:`~faceanalysis.datasets.synthetic.
#: prepare_synthetic_data`).
SYNTHETIC_MAKERS['face_crops'] = make_synthetic_face_crops
