"""Image-only pre-training data in torchvision's ImageFolder layout (MCF without ``--use_lmdb``).

MCF pre-trains on face crops read with ``torchvision.datasets.ImageFolder(data_path)`` and drops
the class label (pretrain.md §3.3)::

    data_root/<class>/<any sub-folders>/<image>.{jpg,jpeg,png,webp,bmp}

:class:`ImageFolderImages` reads the same layout as a map-style MMEngine dataset whose raw sample
follows the pre-training data contract for image-only data::

    img         np.uint8 (H, W, 3), RGB
    key         str, the image path relative to data_root, '/'-separated
    source      str, the image file (for messages)
    sample_idx  int, added by BaseDataset.get_data_info

:class:`EncodedImageDataset` is the part shared with
:class:`~faceanalysis.datasets.pretrain.lmdb_images.LMDBImages`: it decodes the bytes a subclass
reads and deals with images that do not decode. Scraped corpora hold a few of those, so in
training such a sample is counted (shared over DataLoader workers, :attr:`num_skipped`), logged
for the first few, and replaced by BaseDataset's refetch of a random other index (the loading
step returns None) instead of stopping a long run. In ``test_mode`` it raises: an evaluation must
not silently lose images.

Why new code: torchvision's ``ImageFolder`` is a plain ``Dataset`` (no MMEngine pipeline, lazy
init or refetch) that returns PIL images and crashes on a corrupt file; mmpretrain's
``CustomDataset`` would add a dependency for a directory walk.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from faceanalysis.registry import DATASETS

from .decoding import ImageDecodeError, SkipCounter, decode_image_rgb
from .transforms import build_transforms

__all__ = ['EncodedImageDataset', 'ImageFolderImages', 'IMAGE_EXTENSIONS']

#: File suffixes read as images (compared case-insensitively).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')
_CORRUPT = 'corrupt_image'  # the reason name of the other pre-training datasets


class EncodedImageDataset(BaseDataset):
    """Map-style dataset of encoded images: decode to RGB, skip and count corrupt ones.

    Subclasses implement :meth:`load_data_list` (dicts with at least ``key``) and
    :meth:`read_image_bytes` (the encoded file of one sample, plus the ``source`` that names it in
    messages).

    Args:
        pipeline: TRANSFORMS configs or callables applied to the raw sample, built with our
            registry whatever the default scope (mmcv's ``Resize``/``RandomFlip`` included).
        data_root: the data folder, if the subclass has one (BaseDataset's attribute).
        apply_exif_orientation: rotate by the EXIF orientation tag while decoding. False by
            default: MCF (PIL's ``Image.open``) and torchvision's ``ImageFolder`` leave the
            pixels as stored.
        test_mode: raise on a corrupt image instead of skipping it.
        lazy_init, indices, serialize_data, max_refetch: as :class:`mmengine.dataset.BaseDataset`
            (``max_refetch`` bounds the consecutive corrupt images tolerated for one index).
    """

    def __init__(self, pipeline: Sequence[Union[dict, Callable]] = (), data_root: str = '',
                 apply_exif_orientation: bool = False, test_mode: bool = False,
                 lazy_init: bool = False, indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True, max_refetch: int = 1000) -> None:
        self.apply_exif_orientation = bool(apply_exif_orientation)
        self.skip_counter = SkipCounter((_CORRUPT,), owner=type(self).__name__)
        super().__init__(data_root=data_root, data_prefix=dict(),
                         pipeline=build_transforms(list(pipeline)),
                         test_mode=test_mode, lazy_init=lazy_init, indices=indices,
                         serialize_data=serialize_data, max_refetch=max_refetch)

    @property
    def num_skipped(self) -> int:
        """Corrupt images skipped so far, summed over this dataset's DataLoader workers."""
        return sum(self.skip_counter.counts().values())

    def skip_counts(self) -> Dict[str, int]:
        """``{reason: count}`` of skipped samples (one reason: ``'corrupt_image'``)."""
        return self.skip_counter.counts()

    def read_image_bytes(self, data_info: dict) -> tuple:
        """``(encoded image bytes, source)`` of one sample; ``source`` names it in messages."""
        raise NotImplementedError

    def prepare_data(self, idx: int) -> Any:
        """The pipeline's output for sample ``idx``, or None (BaseDataset then refetches) when
        its image does not decode in training."""
        data_info = self.get_data_info(idx)
        data, source = self.read_image_bytes(data_info)
        try:
            img = decode_image_rgb(data, apply_exif_orientation=self.apply_exif_orientation)
        except ImageDecodeError as err:
            message = f'{source} (key {data_info["key"]!r}): {err}'
            if self.test_mode:
                raise ValueError(f'{type(self).__name__}: cannot decode {message}') from err
            self.skip_counter.add(_CORRUPT, message)
            return None
        data_info.update(img=img, source=source)
        return self.pipeline(data_info)


@DATASETS.register_module()
class ImageFolderImages(EncodedImageDataset):
    """Every image under ``data_root/<class>/``, without labels (MCF's ImageFolder data).

    Images are listed as torchvision's ``ImageFolder`` lists them: class folders are the
    sub-folders of ``data_root`` (at least one is required), images are searched recursively in
    each (following symbolic links), and the order is class folders sorted by name, then sorted
    paths, so indices are stable. Files directly in ``data_root`` are not read (an error names
    them when there is no class folder). See the module docstring for the sample layout.

    Args:
        data_root: the folder holding the class folders.
        pipeline: TRANSFORMS applied to the raw sample.
        extensions: file suffixes to read, case-insensitive.
        apply_exif_orientation, test_mode, lazy_init, indices, serialize_data, max_refetch: see
            :class:`EncodedImageDataset`.

    Example:
        >>> dataset = ImageFolderImages('data/laion_face_cropped', pipeline=[
        ...     dict(type='Resize', scale=(224, 224)), dict(type='RandomFlip', prob=0.5)])
    """

    def __init__(self, data_root: str, pipeline: Sequence[Union[dict, Callable]] = (),
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, **kwargs: Any) -> None:
        if not data_root:
            raise ValueError('ImageFolderImages needs data_root (a folder of class folders)')
        self.extensions = tuple(ext.lower() if ext.startswith('.') else f'.{ext.lower()}'
                                for ext in extensions)
        if not self.extensions:
            raise ValueError('ImageFolderImages needs at least one image extension')
        super().__init__(pipeline=pipeline, data_root=str(data_root), **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'ImageFolderImages: {root} does not exist or is not a folder')
        with os.scandir(root) as entries:
            names = sorted(entry.name for entry in entries)
        classes = [name for name in names if osp.isdir(osp.join(root, name))]
        if not classes:
            loose = [name for name in names if name.lower().endswith(self.extensions)]
            hint = (f'; it holds {len(loose)} image(s) directly ({loose[:3]}...), move them into '
                    f'a class folder such as {osp.join(root, "images")}/' if loose else '')
            raise FileNotFoundError(
                f'ImageFolderImages: {root} has no class sub-folder; the ImageFolder layout is '
                f'<root>/<class>/<image> with at least one class folder{hint}')
        data_list = []
        for class_name in classes:
            class_dir = osp.join(root, class_name)
            for folder, sub_folders, files in os.walk(class_dir, followlinks=True):
                sub_folders.sort()  # os.walk descends in this order
                for file_name in sorted(files):
                    if file_name.lower().endswith(self.extensions):
                        path = osp.join(folder, file_name)
                        key = osp.relpath(path, root).replace(os.sep, '/')
                        data_list.append(dict(key=key))
        if not data_list:
            raise FileNotFoundError(
                f'ImageFolderImages: the class folders {classes[:5]} of {root} hold no file '
                f'ending in {self.extensions}')
        return data_list

    def read_image_bytes(self, data_info: dict) -> tuple:
        path = osp.join(self.data_root, *data_info['key'].split('/'))
        with open(path, 'rb') as f:
            return f.read(), path
