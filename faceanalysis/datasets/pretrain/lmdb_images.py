"""Image-only pre-training data from an LMDB in MCF's layout (``--use_lmdb_dataset``).

MCF's ``LMDBImageDataset`` (pretrain.md §3.3) reads::

    lmdb_path/            an LMDB environment (a directory: data.mdb, lock.mdb)
        b'length'         the number of images, ASCII digits
        <key>             the encoded image of each key (UTF-8 key bytes)
    keys_file             ``--lmdb_txt``: the keys, one per line, in dataset order

and sample ``i`` is the image stored under line ``i`` of the keys file. :class:`LMDBImages` reads
the same files as a map-style MMEngine dataset with the raw sample of the data contract::

    img         np.uint8 (H, W, 3), RGB
    key         str, the LMDB key
    source      str, the LMDB path (for messages)
    sample_idx  int, added by BaseDataset.get_data_info

Differences from MCF's reader, on purpose:

* the image is always converted to RGB. MCF passes ``Image.open(...)`` to the transforms without
  ``.convert('RGB')``, so a grayscale or CMYK image gives a tensor with 1 or 4 channels and breaks
  the batch;
* ``length`` is checked against the keys file (MCF trusts ``length`` and fails with an
  IndexError, or silently ignores trailing keys); a missing key raises naming it (MCF would
  fail inside PIL on ``None``);
* the environment is opened lazily, once per process (:func:`lmdb_environment`), and never
  stored in the dataset: an LMDB environment must not be used across a fork and cannot be
  pickled, and DataLoader workers get a copy of the dataset (MCF opens it in ``__init__``);
* corrupt images are skipped and counted (:class:`~.image_folder.EncodedImageDataset`).

What is our assumption rather than MCF's documented format: the keys file's lines are stripped
of surrounding whitespace and trailing empty lines are ignored (an empty line in the middle
is an error); the values may be any format OpenCV decodes (MCF's PIL would accept the same
common ones); a file instead of a directory is opened with ``subdir=False``.

``lmdb`` is an optional dependency (requirements/optional.txt), imported when the dataset is
built.

Why new code: MCF's reader is a plain torch ``Dataset`` with the flaws above; no library of our
stack reads this layout.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

from faceanalysis.registry import DATASETS

from .image_folder import EncodedImageDataset

__all__ = ['LMDBImages', 'import_lmdb', 'read_lmdb_keys', 'lmdb_environment']

#: realpath -> (process id, data file identity, read-only environment). One environment per
#: file and process: py-lmdb refuses to open a path twice in one process, and several dataset
#: objects (copies, subsets, train/val views) may read the same file.
_ENVIRONMENTS: Dict[str, Tuple[int, Tuple[int, int], Any]] = {}


def import_lmdb():
    """The ``lmdb`` module, or an ImportError saying how to install it."""
    try:
        import lmdb
    except ImportError as err:
        raise ImportError('LMDBImages reads an LMDB and needs the optional package lmdb: '
                          '`pip install lmdb` (requirements/optional.txt)') from err
    return lmdb


def lmdb_environment(lmdb_path: str):
    """This process's read-only environment of ``lmdb_path``, opened on first use.

    Opened with ``readonly=True, lock=False, readahead=False, meminit=False`` (random reads of a
    file nobody writes). A process forked from one that had it open (a DataLoader worker) does
    not use the inherited handle, which LMDB forbids across a fork: it closes it, which releases
    only its own mapping, and opens its own. An environment whose data file was replaced since
    (same path, new file) is reopened too. Dataset objects hold no environment, so none is ever
    pickled into a worker.
    """
    real_path = osp.realpath(lmdb_path)
    is_dir = osp.isdir(real_path)
    stat = os.stat(osp.join(real_path, 'data.mdb') if is_dir else real_path)
    identity = (stat.st_dev, stat.st_ino)
    pid = os.getpid()
    entry = _ENVIRONMENTS.pop(real_path, None)
    if entry is not None:
        if entry[0] == pid and entry[1] == identity:
            _ENVIRONMENTS[real_path] = entry
            return entry[2]
        entry[2].close()  # inherited over a fork, or a stale file
    env = import_lmdb().open(real_path, subdir=is_dir, readonly=True, lock=False,
                             readahead=False, meminit=False)
    _ENVIRONMENTS[real_path] = (pid, identity, env)
    return env


def read_lmdb_keys(keys_file: str) -> List[str]:
    """The keys listed in ``keys_file``, one per line, stripped; trailing empty lines ignored.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` naming the line for an
    empty line followed by more keys.
    """
    if not osp.isfile(keys_file):
        raise FileNotFoundError(f'LMDB keys file {keys_file} does not exist')
    with open(keys_file, encoding='utf-8') as f:
        keys = [line.strip() for line in f]
    while keys and not keys[-1]:
        keys.pop()
    empty = [number for number, key in enumerate(keys, start=1) if not key]
    if empty:
        raise ValueError(f'{keys_file}: line(s) {empty[:5]} are empty; every line must hold '
                         'one LMDB key')
    return keys


@DATASETS.register_module()
class LMDBImages(EncodedImageDataset):
    """The images of an MCF-layout LMDB, in keys-file order (see the module docstring).

    Args:
        lmdb_path: the LMDB environment (a directory, or a single file).
        keys_file: the text file listing one key per line (MCF's ``--lmdb_txt``).
        pipeline: TRANSFORMS applied to the raw sample.
        apply_exif_orientation, test_mode, lazy_init, indices, serialize_data, max_refetch: see
            :class:`~faceanalysis.datasets.pretrain.image_folder.EncodedImageDataset`.

    Raises (when the data list is loaded):
        ImportError: ``lmdb`` is not installed.
        FileNotFoundError: ``lmdb_path`` or ``keys_file`` does not exist.
        ValueError: ``b'length'`` is missing, not an integer, or differs from the number of keys.

    Reading a sample raises ``KeyError`` naming the key and both files if the key is not in the
    LMDB.

    Example:
        >>> dataset = LMDBImages('data/laion_face_cropped.lmdb', 'data/laion_face_cropped.txt',
        ...                      pipeline=[dict(type='Resize', scale=(224, 224))])
    """

    def __init__(self, lmdb_path: str, keys_file: str,
                 pipeline: Sequence[Union[dict, Callable]] = (), **kwargs: Any) -> None:
        import_lmdb()  # fail now, with the install hint, rather than in a worker
        self.lmdb_path = str(lmdb_path)
        self.keys_file = str(keys_file)
        super().__init__(pipeline=pipeline, **kwargs)

    # ----------------------------------------------------------------------------- data list
    def load_data_list(self) -> List[dict]:
        if not osp.exists(self.lmdb_path):
            raise FileNotFoundError(f'LMDBImages: LMDB {self.lmdb_path} does not exist')
        keys = read_lmdb_keys(self.keys_file)
        with lmdb_environment(self.lmdb_path).begin(write=False) as txn:
            raw_length = txn.get(b'length')
        if raw_length is None:
            raise ValueError(f'LMDBImages: LMDB {self.lmdb_path} has no b"length" entry (MCF '
                             'layout: the image count under the key "length")')
        try:
            length = int(bytes(raw_length).decode('ascii').strip())
        except (UnicodeDecodeError, ValueError) as err:
            raise ValueError(f'LMDBImages: b"length" of {self.lmdb_path} is {bytes(raw_length)!r}'
                             ', not an integer in ASCII') from err
        if length != len(keys):
            raise ValueError(f'LMDBImages: LMDB {self.lmdb_path} says length={length} but the '
                             f'keys file {self.keys_file} lists {len(keys)} keys; they must '
                             'describe the same images')
        return [dict(key=key) for key in keys]

    def read_image_bytes(self, data_info: dict) -> tuple:
        key = data_info['key']
        with lmdb_environment(self.lmdb_path).begin(write=False) as txn:
            data = txn.get(key.encode('utf-8'))
        if data is None:
            raise KeyError(f'LMDBImages: key {key!r}, listed in {self.keys_file}, is not in the '
                           f'LMDB {self.lmdb_path}')
        return bytes(data), self.lmdb_path
