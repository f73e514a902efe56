"""Map-style image-text datasets from a caption list: small corpora and held-out eval sets.

Large corpora stream from tar shards (:mod:`~faceanalysis.datasets.pretrain.webdataset`). A
list of files is simpler for what needs random access and a fixed order: retrieval evaluation
(``captions`` in dataset order), FLIP-80M's TencentPretrain corpus, small fine-tuning sets.

Formats:

* :class:`ImageTextTsvDataset`, one sample per line, tab-separated (UTF-8):

  - ``path<TAB>caption`` (default column order; paths relative to ``data_root/img_prefix``);
  - TencentPretrain's ``text<TAB>image_path`` (FLIP-80M, shared/docs/pretrain.md §5.3): a header
    row naming the columns (``text<TAB>path``) is recognised, or pass
    ``columns=('text', 'path')``;
  - an optional third column ``text_aux`` (ALIP's synthetic caption).
* :class:`ImageTextFolderDataset`: every image under a folder with a same-name caption sidecar
  (``face_001.jpg`` + ``face_001.txt``).

Loading checks the list: a line with the wrong number of columns or a missing image file raises,
naming the file and line. Samples with an empty caption are dropped, counted (``skip_counts()``)
and reported in one warning. An image that fails to decode later, in ``__getitem__``, is counted
and logged, and MMEngine's ``BaseDataset`` draws another index (training) — in ``test_mode`` it
raises instead, since an evaluation set must be complete.

Samples follow the pre-training data contract: ``img`` np.uint8 (H, W, 3) RGB, ``text`` str,
optional ``text_aux`` str, ``key`` (the image path as listed), ``source`` (list file and line).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger

from faceanalysis.registry import DATASETS

from .decoding import ImageDecodeError, SkipCounter, decode_caption, decode_image_rgb
from .transforms import build_transforms

__all__ = ['ImageTextTsvDataset', 'ImageTextFolderDataset', 'LIST_SKIP_REASONS']

#: Reasons a sample is dropped (load time: empty captions) or replaced (corrupt image).
LIST_SKIP_REASONS = ('empty_text', 'empty_aux_text', 'corrupt_image')
#: Header names recognised in a TSV's first row, and the column each stands for.
HEADER_NAMES = {
    'path': 'path', 'image_path': 'path', 'image': 'path', 'img_path': 'path',
    'text': 'text', 'caption': 'text', 'text_aux': 'text_aux', 'caption_aux': 'text_aux',
}
COLUMNS = ('path', 'text', 'text_aux')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')
_SHOW = 5


class _Record(NamedTuple):
    """One listed sample: ``where`` locates it for messages (file and line)."""
    where: str
    path: str
    text: str
    text_aux: Optional[str]


class _ImageTextListDataset(BaseDataset):
    """Shared loading, checks, skip counting and image decoding of the list datasets.

    Subclasses implement :meth:`_records`. Arguments common to both (besides the subclass's):

    Args:
        data_root: root of ``ann_file`` and ``img_prefix`` when they are relative.
        img_prefix: folder the listed image paths are relative to (under ``data_root``).
        pipeline: transform configs (or callables), built from our ``TRANSFORMS`` registry.
        check_files: check at load time that every image file exists (one ``stat`` per
            sample; turn off for a list of millions on a slow file system).
        apply_exif_orientation: see
            :func:`~faceanalysis.datasets.pretrain.decoding.decode_image_rgb`.
        log_first: corrupt images logged before only counting.
        test_mode, lazy_init, max_refetch, indices, serialize_data: as MMEngine's
            ``BaseDataset``.
    """

    def __init__(self, ann_file: str = '', data_root: str = '', img_prefix: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (), check_files: bool = True,
                 apply_exif_orientation: bool = True, log_first: int = 5,
                 test_mode: bool = False, lazy_init: bool = False, max_refetch: int = 1000,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True) -> None:
        self.check_files = bool(check_files)
        self.apply_exif_orientation = bool(apply_exif_orientation)
        self._skips = SkipCounter(LIST_SKIP_REASONS, type(self).__name__, log_first)
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=dict(img_path=img_prefix),
                         pipeline=build_transforms(pipeline), test_mode=test_mode,
                         lazy_init=lazy_init, max_refetch=max_refetch, indices=indices,
                         serialize_data=serialize_data)

    # ------------------------------------------------------------------ to implement
    def _records(self) -> Iterator[_Record]:
        raise NotImplementedError

    def _describe(self) -> str:
        """What the list is, for messages."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        data_list, dropped = [], {'empty_text': [], 'empty_aux_text': []}
        for record in self._records():
            if not record.text:
                dropped['empty_text'].append(record.where)
                continue
            if record.text_aux is not None and not record.text_aux:
                dropped['empty_aux_text'].append(record.where)
                continue
            img_path = osp.join(self.data_prefix['img_path'], record.path)
            if self.check_files and not osp.isfile(img_path):
                raise FileNotFoundError(f'{record.where}: image {img_path} does not exist'
                                        f'{self._missing_file_hint()}')
            info = dict(img_path=img_path, text=record.text, key=record.path,
                        source=record.where)
            if record.text_aux is not None:
                info['text_aux'] = record.text_aux
            data_list.append(info)
        for reason, where in dropped.items():
            if where:
                self._skips.add(reason, count=len(where))
                shown = ', '.join(where[:_SHOW]) + (' ...' if len(where) > _SHOW else '')
                what = 'caption' if reason == 'empty_text' else 'second caption (text_aux)'
                MMLogger.get_current_instance().warning(
                    f'{type(self).__name__}: dropped {len(where)} sample(s) of '
                    f'{self._describe()} with an empty {what}: {shown}')
        if not data_list:
            raise ValueError(f'{self._describe()} holds no sample with a caption')
        return data_list

    def _missing_file_hint(self) -> str:
        return ''

    # ------------------------------------------------------------------------ samples
    def prepare_data(self, idx: int) -> Any:
        """Decode the image and run the pipeline; ``None`` (BaseDataset then draws another
        index) for an undecodable image in training, an error in ``test_mode``."""
        info = self.get_data_info(idx)
        path = info['img_path']
        try:
            with open(path, 'rb') as file:
                img = decode_image_rgb(file.read(), self.apply_exif_orientation)
        except (OSError, ImageDecodeError) as error:
            if self.test_mode:
                raise ValueError(f'{info["source"]}: image {path} cannot be read: '
                                 f'{error}') from error
            self._skips.add('corrupt_image', f'{info["source"]}: image {path}: {error}; '
                            'another sample is drawn instead')
            return None
        results = dict(img=img, text=info['text'], key=info['key'], source=info['source'],
                       img_path=path, sample_idx=info.get('sample_idx', idx))
        if 'text_aux' in info:
            results['text_aux'] = info['text_aux']
        return self.pipeline(results)

    def skip_counts(self) -> Dict[str, int]:
        """``{reason: count}``: captions dropped at load time and corrupt images replaced so
        far (over all DataLoader workers); reasons: :data:`LIST_SKIP_REASONS`."""
        return self._skips.counts()

    def get_caption(self, idx: int) -> str:
        """The caption of sample ``idx`` (the dataset order, after dropping empty ones)."""
        return self.get_data_info(idx)['text']

    @property
    def captions(self) -> List[str]:
        """All captions in dataset order (retrieval evaluation pairs caption ``i`` with
        image ``i``)."""
        return [self.get_caption(i) for i in range(len(self))]


@DATASETS.register_module()
class ImageTextTsvDataset(_ImageTextListDataset):
    """Image-caption pairs listed in a TSV file (formats in the module docstring).

    Args:
        ann_file: the TSV file (relative to ``data_root`` unless absolute).
        columns: column names in order, from ``'path'``, ``'text'`` and ``'text_aux'``
            (``path`` and ``text`` required). Default: from a header row if the first row is
            one, else ``('path', 'text')`` or, if the first row has three fields,
            ``('path', 'text', 'text_aux')``.
        **kwargs: see :class:`_ImageTextListDataset` (``data_root``, ``img_prefix``,
            ``pipeline``, ``check_files``, ``test_mode`` ...).

    Example:
        >>> ds = ImageTextTsvDataset('val.tsv', data_root='data/faces', img_prefix='images',
        ...                          pipeline=[dict(type='ResizeShortCenterCrop', size=224),
        ...                                    dict(type='TokenizeText'),
        ...                                    dict(type='PackImageText')],
        ...                          test_mode=True)  # doctest: +SKIP
    """

    def __init__(self, ann_file: str, columns: Optional[Sequence[str]] = None,
                 **kwargs: Any) -> None:
        if not ann_file:
            raise ValueError('ImageTextTsvDataset needs ann_file (the TSV list)')
        self.columns = None if columns is None else self._check_columns(columns, 'columns')
        super().__init__(ann_file=ann_file, **kwargs)

    @staticmethod
    def _check_columns(columns: Sequence[str], origin: str) -> tuple:
        columns = tuple(columns)
        unknown = [c for c in columns if c not in COLUMNS]
        if (unknown or len(set(columns)) != len(columns) or 'path' not in columns
                or 'text' not in columns):
            raise ValueError(f'{origin} {columns} must name "path" and "text" (and optionally '
                             f'"text_aux") once each; unknown: {unknown}')
        return columns

    def _describe(self) -> str:
        return str(self.ann_file)

    def _missing_file_hint(self) -> str:
        return (f' (columns are {self._used_columns}; for TencentPretrain\'s text<TAB>path '
                "order pass columns=('text', 'path'))") if self._used_columns[0] == 'path' else ''

    def _header_columns(self, fields: List[str]) -> Optional[tuple]:
        names = [field.strip().lower() for field in fields]
        if not names or not all(name in HEADER_NAMES for name in names):
            return None
        return self._check_columns([HEADER_NAMES[n] for n in names],
                                   f'the header row of {self.ann_file}')

    def _records(self) -> Iterator[_Record]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'caption list {self.ann_file} does not exist')
        columns = self.columns
        self._used_columns = columns or ('path', 'text')
        first_row = True
        with open(self.ann_file, encoding='utf-8') as file:
            for line_no, line in enumerate(file, start=1):
                line = line.rstrip('\r\n')
                if not line.strip():
                    continue  # blank lines (a trailing one) are not samples
                fields = line.split('\t')
                if first_row:
                    first_row = False
                    header = self._header_columns(fields)
                    if header is not None:
                        if columns is not None and header != columns:
                            raise ValueError(f'{self.ann_file} line {line_no}: the header '
                                             f'{header} contradicts columns={columns}')
                        columns = self._used_columns = header
                        continue
                    if columns is None:
                        columns = ('path', 'text', 'text_aux') if len(fields) == 3 else (
                            'path', 'text')
                        self._used_columns = columns
                if len(fields) != len(columns):
                    raise ValueError(f'{self.ann_file} line {line_no}: expected {len(columns)} '
                                     f'tab-separated columns {columns}, found {len(fields)}: '
                                     f'{line[:120]!r}')
                row = dict(zip(columns, fields))
                path = row['path'].strip()
                if not path:
                    raise ValueError(f'{self.ann_file} line {line_no}: empty image path')
                text_aux = row['text_aux'].strip() if 'text_aux' in row else None
                yield _Record(f'{self.ann_file} line {line_no}', path, row['text'].strip(),
                              text_aux)


@DATASETS.register_module()
class ImageTextFolderDataset(_ImageTextListDataset):
    """Every image under a folder, captioned by a same-name text file next to it.

    ``<folder>/a/face_001.jpg`` is captioned by ``<folder>/a/face_001.txt`` (whole file,
    surrounding whitespace stripped); with ``aux_caption_suffix='.ofa.txt'`` the second caption
    is ``face_001.ofa.txt``. Files are listed in sorted order (recursive). A missing caption file
    raises.

    Args:
        data_root: the folder (or its root, with ``img_prefix``).
        caption_suffix: caption file suffix replacing the image extension.
        aux_caption_suffix: optional second-caption suffix (``text_aux``).
        extensions: image file extensions (case-insensitive).
        **kwargs: see :class:`_ImageTextListDataset`.
    """

    def __init__(self, data_root: str, caption_suffix: str = '.txt',
                 aux_caption_suffix: Optional[str] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, **kwargs: Any) -> None:
        if kwargs.get('ann_file'):
            raise ValueError('ImageTextFolderDataset lists a folder; it takes no ann_file')
        self.caption_suffix = caption_suffix
        self.aux_caption_suffix = aux_caption_suffix
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(data_root=data_root, **kwargs)

    def _folder(self) -> str:
        return self.data_prefix['img_path'] or self.data_root

    def _describe(self) -> str:
        return f'folder {self._folder()}'

    def _read_caption(self, path: str, image_path: str) -> str:
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {image_path} has no caption file {path}')
        with open(path, 'rb') as file:
            return decode_caption(file.read())

    def _records(self) -> Iterator[_Record]:
        folder = self._folder()
        if not osp.isdir(folder):
            raise FileNotFoundError(f'image folder {folder} does not exist')
        images = []
        for directory, subdirs, files in os.walk(folder):
            subdirs.sort()
            for name in files:
                if osp.splitext(name)[1].lower() in self.extensions:
                    images.append(osp.relpath(osp.join(directory, name), folder))
        if not images:
            raise FileNotFoundError(f'image folder {folder} holds no image {self.extensions}')
        for rel_path in sorted(images):
            image_path = osp.join(folder, rel_path)
            stem = osp.splitext(image_path)[0]
            caption_path = stem + self.caption_suffix
            text = self._read_caption(caption_path, image_path)
            text_aux = (None if self.aux_caption_suffix is None else
                        self._read_caption(stem + self.aux_caption_suffix, image_path))
            yield _Record(caption_path, rel_path.replace(os.sep, '/'), text, text_aux)
