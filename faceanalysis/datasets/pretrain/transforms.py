"""Pipeline transforms of image-text pre-training (FaRL, FLIP, FLIP-80M, ALIP recipes).

They work on the raw sample of the pre-training data contract (``img`` np.uint8 (H, W, 3) RGB,
``text`` str, optional ``text_aux`` str, ``key``), already decoded by the dataset. Decoding is
not a transform on purpose: the streaming dataset decodes after its shuffle buffer and has to
skip and count undecodable images, which a transform cannot do without swallowing errors.

* :class:`RandomResizedCropImage`: torchvision's RandomResizedCrop semantics (FLIP ``crop_ver
  v4``: area (0.5, 1), ratio (3/4, 4/3), 10 attempts, centre-crop fallback, bicubic).
* :class:`SquashResize`: resize to a fixed size ignoring aspect (FLIP-80M's ``Resize((224,
  224))``; shared/docs/pretrain.md §5.3).
* :class:`ResizeShortCenterCrop`: short side to ``size``, then the central square (CLIP eval).
* Horizontal flip: mmcv's ``RandomFlip(prob=0.5, direction='horizontal')`` works on these
  samples as it is.
* :class:`TokenizeText`: CLIP BPE ids of ``text`` (and ``text_aux``).
* :class:`PackImageText`: the tensors of the contract.

Resizing uses OpenCV (``cv2.resize``); our stack has no PIL-based transform layer. OpenCV's
bilinear/bicubic kernels do not low-pass filter when shrinking, which aliases when a full-size
LAION image (often > 1000 px) becomes 224 px; PIL, which open_clip uses, filters. With
``antialias=True`` (default) an image shrunk by more than 2x is first reduced with
``INTER_AREA`` (a box filter) to twice the output size, then resized with the requested kernel.
Random draws use the global ``np.random`` state, which MMEngine seeds per DataLoader worker.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose

from faceanalysis.registry import TRANSFORMS

__all__ = [
    'RandomResizedCropImage', 'SquashResize', 'ResizeShortCenterCrop', 'TokenizeText',
    'PackImageText', 'resize_image', 'build_transforms', 'build_pipeline', 'INTERPOLATIONS'
]

#: Interpolation names accepted by the transforms, and their OpenCV flags.
INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}


def build_transforms(pipeline: Sequence[Union[dict, Callable]]) -> List[Callable]:
    """Build transform configs with our ``TRANSFORMS`` registry (callables pass through).

    Our registry resolves our transforms and mmcv's (``RandomFlip``) whatever the default
    scope is, which MMEngine's and mmcv's own ``Compose`` do not (they need
    ``default_scope='faceanalysis'``).
    """
    if isinstance(pipeline, (dict, str)) or not isinstance(pipeline, Sequence):
        raise TypeError(f'pipeline must be a list of transform configs, got {pipeline!r}')
    built = []
    for transform in pipeline:
        if isinstance(transform, dict):
            built.append(TRANSFORMS.build(transform))
        elif callable(transform):
            built.append(transform)
        else:
            raise TypeError(f'a pipeline step must be a config dict or callable, got '
                            f'{transform!r}')
    return built


def build_pipeline(pipeline: Sequence[Union[dict, Callable]]) -> Compose:
    """``mmcv.transforms.Compose`` of :func:`build_transforms` (returns ``None`` for a sample
    as soon as a transform does)."""
    return Compose(build_transforms(pipeline))


def _pair(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """``size`` as ``(height, width)``; an int is a square."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f'{name} must be a positive int or (height, width), got {size!r}')
    return int(size[0]), int(size[1])


def _interpolation(name: str) -> int:
    if name not in INTERPOLATIONS:
        raise ValueError(f'unknown interpolation {name!r}; choose one of {sorted(INTERPOLATIONS)}')
    return INTERPOLATIONS[name]


def _check_image(results: Dict, owner: str) -> np.ndarray:
    img = results.get('img')
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        found = (f'{type(img).__name__} {getattr(img, "shape", "")}'.strip()
                 if img is not None else 'no img')
        raise ValueError(f'{owner} expects results["img"] as an (H, W, 3) array, got {found} '
                         f'(sample {results.get("key")!r})')
    return img


def resize_image(img: np.ndarray, size: Tuple[int, int], interpolation: str = 'bicubic',
                 antialias: bool = True) -> np.ndarray:
    """Resize an (H, W, C) image to ``size = (height, width)`` with OpenCV.

    With ``antialias`` a shrink by more than 2x along an axis first box-filters that axis
    (``INTER_AREA``) to twice the output size; see the module docstring.

    Returns:
        A new C-contiguous array of the input's dtype, (height, width, C).
    """
    out_h, out_w = size
    flag = _interpolation(interpolation)
    img = np.ascontiguousarray(img)
    height, width = img.shape[:2]
    if antialias and interpolation not in ('area', 'nearest'):
        mid_h, mid_w = min(height, 2 * out_h), min(width, 2 * out_w)
        if (mid_h, mid_w) != (height, width):
            img = cv2.resize(img, (mid_w, mid_h), interpolation=cv2.INTER_AREA)
    if img.shape[:2] == (out_h, out_w):
        return img.copy()
    return cv2.resize(img, (out_w, out_h), interpolation=flag)


@TRANSFORMS.register_module()
class RandomResizedCropImage(BaseTransform):
    """Crop a random area and aspect ratio, then resize to ``size`` (torchvision semantics).

    Each attempt draws the crop area ``U(scale) * H * W`` and the aspect ratio ``w / h`` log-
    uniformly from ``ratio``; the first crop that fits in the image is taken at a uniform
    position. After ``max_attempts`` misses the fallback is the largest central crop whose
    aspect ratio is clamped into ``ratio`` (the whole image if its ratio is inside).

    Args:
        size: output ``(height, width)`` or an int for a square.
        scale: crop area range as fractions of the image area.
        ratio: aspect ratio (width / height) range.
        interpolation: a name of :data:`INTERPOLATIONS`.
        max_attempts: random draws before the fallback.
        antialias: see :func:`resize_image`.

    Modified keys: ``img`` (uint8 (h, w, 3)), ``img_shape``; added: ``crop_box`` ``(x1, y1,
    x2, y2)`` in input pixels (exclusive end).
    """

    def __init__(self, size: Union[int, Sequence[int]], scale: Sequence[float] = (0.5, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), interpolation: str = 'bicubic',
                 max_attempts: int = 10, antialias: bool = True) -> None:
        self.size = _pair(size, 'size')
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f'scale must be (low, high) with 0 < low <= high, got {scale!r}')
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f'ratio must be (low, high) with 0 < low <= high, got {ratio!r}')
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        _interpolation(interpolation)
        self.interpolation = interpolation
        self.max_attempts = int(max_attempts)
        self.antialias = bool(antialias)

    def get_crop_box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """Draw a crop of an image of ``height x width``: ``(top, left, crop_h, crop_w)``."""
        area = height * width
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(self.max_attempts):
            target_area = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(log_low, log_high))
            crop_w = int(round(math.sqrt(target_area * aspect)))
            crop_h = int(round(math.sqrt(target_area / aspect)))
            if 0 < crop_w <= width and 0 < crop_h <= height:
                top = int(np.random.randint(0, height - crop_h + 1))
                left = int(np.random.randint(0, width - crop_w + 1))
                return top, left, crop_h, crop_w
        image_ratio = width / height
        if image_ratio < self.ratio[0]:
            crop_w, crop_h = width, int(round(width / self.ratio[0]))
        elif image_ratio > self.ratio[1]:
            crop_h, crop_w = height, int(round(height * self.ratio[1]))
        else:
            crop_h, crop_w = height, width
        crop_h, crop_w = max(1, min(crop_h, height)), max(1, min(crop_w, width))
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w

    def transform(self, results: Dict) -> Dict:
        img = _check_image(results, type(self).__name__)
        top, left, crop_h, crop_w = self.get_crop_box(*img.shape[:2])
        crop = img[top:top + crop_h, left:left + crop_w]
        results['img'] = resize_image(crop, self.size, self.interpolation, self.antialias)
        results['img_shape'] = self.size
        results['crop_box'] = (left, top, left + crop_w, top + crop_h)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, scale={self.scale}, '
                f'ratio={self.ratio}, interpolation={self.interpolation!r}, '
                f'max_attempts={self.max_attempts}, antialias={self.antialias})')


@TRANSFORMS.register_module()
class SquashResize(BaseTransform):
    """Resize to exactly ``size``, ignoring the aspect ratio (FLIP-80M's training input).

    Args:
        size: output ``(height, width)`` or an int for a square.
        interpolation: a name of :data:`INTERPOLATIONS`.
        antialias: see :func:`resize_image`.

    Modified keys: ``img``, ``img_shape``.
    """

    def __init__(self, size: Union[int, Sequence[int]], interpolation: str = 'bicubic',
                 antialias: bool = True) -> None:
        self.size = _pair(size, 'size')
        _interpolation(interpolation)
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def transform(self, results: Dict) -> Dict:
        img = _check_image(results, type(self).__name__)
        results['img'] = resize_image(img, self.size, self.interpolation, self.antialias)
        results['img_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r}, antialias={self.antialias})')


@TRANSFORMS.register_module()
class ResizeShortCenterCrop(BaseTransform):
    """Resize the short side to ``size`` (aspect kept), then take the central square.

    Evaluation input of CLIP-style models (open_clip's ``Resize(size)`` + ``CenterCrop(size)``).
    The crop starts at ``round((long - size) / 2)``.

    Args:
        size: output side length.
        interpolation: a name of :data:`INTERPOLATIONS`.
        antialias: see :func:`resize_image`.

    Modified keys: ``img`` (``size x size``), ``img_shape``.
    """

    def __init__(self, size: int, interpolation: str = 'bicubic', antialias: bool = True) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f'size must be a positive int, got {size!r}')
        self.size = size
        _interpolation(interpolation)
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def transform(self, results: Dict) -> Dict:
        img = _check_image(results, type(self).__name__)
        height, width = img.shape[:2]
        scale = self.size / min(height, width)
        new_h = self.size if height <= width else max(self.size, int(round(height * scale)))
        new_w = self.size if width <= height else max(self.size, int(round(width * scale)))
        resized = resize_image(img, (new_h, new_w), self.interpolation, self.antialias)
        top = int(round((new_h - self.size) / 2))
        left = int(round((new_w - self.size) / 2))
        results['img'] = np.ascontiguousarray(
            resized[top:top + self.size, left:left + self.size])
        results['img_shape'] = (self.size, self.size)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r}, antialias={self.antialias})')


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Replace captions by CLIP BPE token ids.

    Uses :func:`faceanalysis.models.backbones.text_transformer.tokenize` (open_clip's CLIP
    tokenizer: cleaned, lower-cased, ``[SOT] + tokens + [EOT]``, zero-padded; a long text is
    truncated with EOT kept last).

    Args:
        keys: the caption keys to tokenize (``('text', 'text_aux')`` for ALIP). Each must be in
            the sample.
        context_length: token sequence length ``L``.
        keep_caption: keep the raw ``text`` string as ``caption`` (the retrieval metric groups
            images by caption).

    Modified keys: each of ``keys`` becomes torch.long (L,); added: ``caption`` (str).
    """

    def __init__(self, keys: Sequence[str] = ('text',), context_length: int = 77,
                 keep_caption: bool = True) -> None:
        self.keep_caption = bool(keep_caption)
        if isinstance(keys, str):
            keys = (keys,)
        if not keys:
            raise ValueError('TokenizeText needs at least one key')
        self.keys = tuple(keys)
        if context_length < 2:
            raise ValueError(f'context_length must be >= 2 (SOT and EOT), got {context_length}')
        self.context_length = int(context_length)
        # Load the BPE vocabulary now, in the process that builds the pipeline: forked
        # DataLoader workers then share it instead of each importing open_clip (seconds).
        import open_clip.tokenizer  # noqa: F401

    def transform(self, results: Dict) -> Dict:
        from faceanalysis.models.backbones.text_transformer import tokenize
        for key in self.keys:
            if key not in results:
                raise KeyError(f'TokenizeText: sample {results.get("key")!r} has no {key!r} '
                               f'(it has {sorted(results)})')
            text = results[key]
            if not isinstance(text, str):
                raise TypeError(f'TokenizeText: {key!r} of sample {results.get("key")!r} must '
                                f'be a str, got {type(text).__name__}')
            if key == 'text' and self.keep_caption:
                results['caption'] = text
            results[key] = tokenize(text, context_length=self.context_length)[0]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(keys={self.keys}, context_length={self.context_length})'


@TRANSFORMS.register_module()
class PackImageText(BaseTransform):
    """Pack a sample into the tensors of the pre-training data contract.

    Output dict (only these keys):

    * ``img``: torch.uint8 (3, H, W), RGB, contiguous (from np.uint8 (H, W, 3));
    * ``text`` / ``text_aux``: torch.long (L,) token ids, when present;
    * ``mim_mask``: torch.bool (N,), row-major patch grid flattened (an (h, w) mask is
      flattened), when present;
    * ``key``: str, when present;
    * ``caption``: the raw caption str, when present (:class:`TokenizeText` keeps it).

    Args:
        with_text: require ``text`` (image-text data). ``False`` for image-only data.

    Raises:
        ValueError/TypeError: ``img`` not uint8 (H, W, 3); a caption still a string (put
            ``TokenizeText`` first) or not 1-D integer ids; a ``mim_mask`` that is not boolean.
    """

    def __init__(self, with_text: bool = True) -> None:
        self.with_text = bool(with_text)

    @staticmethod
    def _token_ids(value, name: str, key: Optional[str]) -> torch.Tensor:
        if isinstance(value, str):
            raise TypeError(f'PackImageText: {name!r} of sample {key!r} is still a string; put '
                            f'TokenizeText(keys=(..., {name!r})) before PackImageText')
        ids = torch.as_tensor(value)
        if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f'PackImageText: {name!r} of sample {key!r} must be 1-D integer '
                            f'token ids, got {ids.dtype} of shape {tuple(ids.shape)}')
        return ids.long()

    def transform(self, results: Dict) -> Dict:
        key = results.get('key')
        img = _check_image(results, type(self).__name__)
        if img.dtype != np.uint8:
            raise TypeError(f'PackImageText: img of sample {key!r} must be uint8 (the data '
                            f'preprocessor normalises), got {img.dtype}')
        packed = {'img': torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))}
        if self.with_text and 'text' not in results:
            raise KeyError(f'PackImageText: sample {key!r} has no "text" (use '
                           'with_text=False for image-only data)')
        for name in ('text', 'text_aux'):
            if name in results:
                packed[name] = self._token_ids(results[name], name, key)
        if 'mim_mask' in results:
            mask = torch.as_tensor(results['mim_mask'])
            if mask.dtype != torch.bool:
                raise TypeError(f'PackImageText: mim_mask of sample {key!r} must be boolean '
                                f'(True = masked patch), got {mask.dtype}')
            packed['mim_mask'] = mask.reshape(-1).contiguous()
        if key is not None:
            packed['key'] = str(key)
        if isinstance(results.get('caption'), str):
            packed['caption'] = results['caption']
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(with_text={self.with_text})'
