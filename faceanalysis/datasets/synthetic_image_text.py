"""A generated toy image-text corpus and face-crop sets in the real pre-training file formats.

The pre-training tests and the tiny CPU configs need image-text pairs whose captions can actually
be learnt: a contrastive model trained on them should retrieve "a red circle" for a red circle.
So every image shows one coloured shape and its caption names the shape's colour and kind::

    "a red circle"    "a large blue square on a white background"    "an orange star"

The corpus has :data:`SHAPE_COLOURS` (6) x :data:`SHAPES` (5) contents, with random size,
position, rotation, background colour (:data:`BACKGROUNDS`), colour jitter and sensor noise.
Captions come from a few templates (:data:`CAPTION_TEMPLATES`), so the wording varies while the
(colour, shape) content stays recoverable with :func:`caption_content`. The ALIP "synthetic
caption" (a second text for the same image) is another wording of the same content
(:data:`AUX_CAPTION_TEMPLATES`, e.g. "a photo of a circle that is red").

Writers, each producing the on-disk format a real corpus has:

* :func:`write_image_text_shards`: img2dataset webdataset shards (what LAION-Face, FaRL's data,
  and open_clip/ALIP-style training read)::

      root/00000.tar, 00001.tar, ...   members {key}.jpg, {key}.txt, {key}.json[, {key}.cap.txt]
      root/sizes.json                   {"00000.tar": n0, ...}, open_clip's sample count file

  ``{key}.cap.txt`` is **our** convention for ALIP's second text field (img2dataset has no
  such member; ALIP stores both captions in one MXNet record, pretrain.md §6.3).
* :func:`write_image_text_tsv`: ``root/images/{key}.jpg`` and ``root/captions.tsv`` with
  ``relative/path<TAB>caption[<TAB>aux caption]`` lines, no header.
* :func:`make_toy_corpus`: a train set (shards) plus a disjoint held-out val set (TSV), created
  once and reused (a marker file records the parameters).

Image-only face crops for MCF are in :mod:`.synthetic_face_crops`.

Importing this module adds the kind ``'toy_image_text'`` (:func:`make_toy_corpus`), through an
adapter that also takes the arguments of ``tools/misc/make_synthetic_data.py``, to
:data:`~faceanalysis.datasets.synthetic.SYNTHETIC_MAKERS`, so a tiny config can carry
``synthetic_data = dict(kind='toy_image_text', root=..., num_train=64)`` and have the data made
on first use.

Every sample is drawn from its own generator ``default_rng([seed, split_id, index])``, so the
same arguments give byte-identical files (with one OpenCV build: JPEG bytes may differ between
libjpeg versions), a larger corpus starts with the samples of a smaller one, and the shard and TSV writers given the same ``seed`` and ``split`` write the same samples
(handy to check that two readers agree). Different splits are independent draws.

Why new code: the webdataset package (and img2dataset) write tars from downloaded samples and are
optional dependencies here; the standard library's ``tarfile`` is enough to write the format,
and it lets us fix the member metadata so the bytes are reproducible.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import os
import os.path as osp
import re
import shutil
import tarfile
from typing import Dict, List, Mapping, Optional, Tuple, Union

import cv2
import numpy as np

from .synthetic import SYNTHETIC_MAKERS

__all__ = [
    'SHAPE_COLOURS', 'BACKGROUNDS', 'SHAPES', 'SIZES', 'SPLIT_IDS', 'CAPTION_TEMPLATES',
    'AUX_CAPTION_TEMPLATES', 'AUX_CAPTION_SUFFIX', 'VAL_CAPTION_TEMPLATE', 'render_shape_image',
    'make_captions', 'draw_image_text_sample', 'caption_content', 'write_image_text_shards',
    'write_image_text_tsv', 'make_toy_corpus', 'encode_jpeg', 'make_synthetic_toy_image_text'
]

#: Shape colour names -> nominal RGB; each image jitters its shade by up to +-20 per channel.
#: The nominal colours are at least 75 apart (RGB Euclidean; yellow-orange is the closest pair),
#: so after jitter the nearest nominal colour is still the named one.
SHAPE_COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 220),
    'yellow': (240, 215, 40),
    'purple': (140, 50, 190),
    'orange': (245, 140, 25),
}
#: Background names -> nominal RGB (jittered by up to +-10); none is a shape colour.
BACKGROUNDS: Dict[str, Tuple[int, int, int]] = {
    'white': (245, 245, 245),
    'black': (20, 20, 20),
    'gray': (128, 128, 128),
}
SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star', 'cross')
#: Size words -> range of the shape's circumradius as a fraction of the image side.
SIZES: Dict[str, Tuple[float, float]] = {'small': (0.14, 0.22), 'large': (0.28, 0.38)}
#: Split name -> the second seed component, so splits are independent draws.
SPLIT_IDS: Dict[str, int] = {'train': 0, 'val': 1, 'test': 2}

#: Caption wordings; ``a`` becomes ``an`` before a vowel (:func:`_fix_articles`).
CAPTION_TEMPLATES: Tuple[str, ...] = (
    'a {colour} {shape}',
    'a {size} {colour} {shape}',
    'a {colour} {shape} on a {background} background',
    'a {size} {colour} {shape} on a {background} background',
    'a picture of a {colour} {shape}',
)
#: Wordings of the second ("synthetic") caption, disjoint from :data:`CAPTION_TEMPLATES`.
AUX_CAPTION_TEMPLATES: Tuple[str, ...] = (
    'a photo of a {shape} that is {colour}',
    'a {shape} coloured {colour} on {background}',
    'there is a {size} {colour} {shape} in the image',
    'a {colour}-coloured {shape}',
)
#: The held-out set's single wording: one caption string per (colour, shape), so retrieval's
#: caption groups are the image contents (30 captions; chance i2t R@1 = 3.3 %).
VAL_CAPTION_TEMPLATE = 'a {colour} {shape}'
#: Member suffix of the second caption in a shard (our convention for ALIP's second text field).
AUX_CAPTION_SUFFIX = 'cap.txt'

_JPEG_QUALITY = 95
_TAR_MTIME = 1_600_000_000  # fixed member time: identical arguments give identical tar bytes
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_CORPUS_MARKER = 'toy_corpus.json'
_CORPUS_VERSION = 2  # bump when the drawing or the captions change, to regenerate old corpora


# ------------------------------------------------------------------------------------------------
# drawing and captions
# ------------------------------------------------------------------------------------------------
def _shape_outline(shape: str, theta: float) -> np.ndarray:
    """Outline (N, 2) of ``shape`` with circumradius 1, centred on 0, rotated by ``theta`` rad."""
    if shape == 'square':
        angles = theta + np.pi / 4 + np.arange(4) * np.pi / 2
        radii = np.ones(4)
    elif shape == 'triangle':
        angles = theta - np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        radii = np.ones(3)
    elif shape == 'star':  # five points, inner radius 0.45
        angles = theta - np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    elif shape == 'cross':  # a plus sign: arms of half-width 0.35 reaching radius 1
        w = 0.35
        points = np.array([(w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1),
                           (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1)], dtype=np.float64)
        points /= np.hypot(1, w)  # the outer corners lie on the unit circle
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        return points @ rot.T
    else:
        raise ValueError(f'no outline for shape {shape!r}; polygon shapes are {SHAPES[1:]}')
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def render_shape_image(rng: np.random.Generator, image_size: int = 64) -> Tuple[np.ndarray, dict]:
    """Draw one coloured shape on a plain background.

    Args:
        rng: source of every random choice.
        image_size: side of the square image in pixels (at least 16).

    Returns:
        ``image`` (S, S, 3) uint8 RGB and ``attributes``: ``colour``, ``shape``, ``size``,
        ``background`` (names from the tables above), ``centre`` (x, y) and ``radius`` in pixels
        (OpenCV convention, pixel centres on integers), ``rotation`` in degrees.
    """
    if image_size < 16:
        raise ValueError(f'image_size must be at least 16, got {image_size}')
    colour = str(rng.choice(list(SHAPE_COLOURS)))
    shape = str(rng.choice(SHAPES))
    size = str(rng.choice(list(SIZES)))
    background = str(rng.choice(list(BACKGROUNDS)))
    radius = image_size * rng.uniform(*SIZES[size])
    margin = radius + 1
    centre = rng.uniform(margin, image_size - 1 - margin, 2)
    rotation = rng.uniform(0, 2 * np.pi)
    bg_rgb = np.clip(np.asarray(BACKGROUNDS[background]) + rng.integers(-10, 11, 3), 0, 255)
    fg_rgb = np.clip(np.asarray(SHAPE_COLOURS[colour]) + rng.integers(-20, 21, 3), 0, 255)

    image = np.empty((image_size, image_size, 3), np.uint8)
    image[:] = bg_rgb.astype(np.uint8)
    fill = tuple(int(v) for v in fg_rgb)
    scale = float(1 << _SHIFT)
    if shape == 'circle':
        cv2.circle(image, tuple(int(round(v * scale)) for v in centre), int(round(radius * scale)),
                   fill, -1, cv2.LINE_AA, _SHIFT)
    else:
        outline = _shape_outline(shape, rotation) * radius + centre
        fixed = np.round(outline * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(image, [fixed], fill, cv2.LINE_AA, _SHIFT)
    noise = rng.normal(0, rng.uniform(0.5, 4.0), image.shape)
    image = np.clip(np.round(image + noise), 0, 255).astype(np.uint8)
    attributes = dict(colour=colour, shape=shape, size=size, background=background,
                      centre=[float(v) for v in centre], radius=float(radius),
                      rotation=float(np.rad2deg(rotation)))
    return image, attributes


def _fix_articles(text: str) -> str:
    return re.sub(r'\ba (?=[aeiou])', 'an ', text)


def make_captions(rng: np.random.Generator, attributes: Mapping) -> Tuple[str, str]:
    """A caption and a second ("synthetic") caption of the same content, in different wordings.

    Both are always drawn, so a sample's image and caption do not depend on whether the aux
    caption is written.
    """
    fields = {key: attributes[key] for key in ('colour', 'shape', 'size', 'background')}
    caption = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(**fields)
    aux = AUX_CAPTION_TEMPLATES[int(rng.integers(len(AUX_CAPTION_TEMPLATES)))].format(**fields)
    return _fix_articles(caption), _fix_articles(aux)


def caption_content(text: str) -> Tuple[str, str]:
    """The (colour, shape) a toy caption names, e.g. ``'a large blue square'`` -> (blue, square).

    Raises ``ValueError`` unless the text names exactly one shape colour and one shape.
    """
    words = re.findall(r'[a-z]+', text.lower())
    colours = [w for w in words if w in SHAPE_COLOURS]
    shapes = [w for w in words if w in SHAPES]
    if len(colours) != 1 or len(shapes) != 1:
        raise ValueError(f'caption {text!r} names colours {colours} and shapes {shapes}; a toy '
                         'caption names exactly one of each')
    return colours[0], shapes[0]


def draw_image_text_sample(seed: int, index: int, split: str = 'train',
                           image_size: int = 64) -> dict:
    """Sample ``index`` of ``split``: ``image`` (S, S, 3) uint8 RGB, ``caption``, ``caption_aux``,
    ``attributes`` (see :func:`render_shape_image`) and ``similarity`` (a fake CLIP score)."""
    rng = np.random.default_rng([int(seed), _split_id(split), int(index)])
    image, attributes = render_shape_image(rng, image_size)
    caption, caption_aux = make_captions(rng, attributes)
    similarity = float(np.round(rng.uniform(0.28, 0.42), 4))
    return dict(image=image, caption=caption, caption_aux=caption_aux, attributes=attributes,
                similarity=similarity)


def _split_id(split: str) -> int:
    if split not in SPLIT_IDS:
        raise ValueError(f'split must be one of {tuple(SPLIT_IDS)}, got {split!r}')
    return SPLIT_IDS[split]


def encode_jpeg(image_rgb: np.ndarray, quality: int = _JPEG_QUALITY) -> bytes:
    """JPEG bytes of an RGB (H, W, 3) or grayscale (H, W) uint8 image."""
    bgr = image_rgb if image_rgb.ndim == 2 else cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f'OpenCV could not encode an image of shape {image_rgb.shape} as JPEG')
    return buffer.tobytes()


def _sample_key(index: int) -> str:
    # img2dataset's key is the shard id (5 digits) followed by the index in the shard (4 digits
    # with its default 10,000 samples per shard), i.e. the global index in 9 digits; we use the
    # global index whatever the shard size, so keys stay unique and sorted.
    return f'{index:09d}'


def _check_count(name: str, value: int, minimum: int) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# image-text writers
# ------------------------------------------------------------------------------------------------
def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = _TAR_MTIME
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


def write_image_text_shards(root: str, num_samples: int, samples_per_shard: int = 16,
                            seed: int = 0, image_size: int = 64, with_aux: bool = False,
                            split: str = 'train') -> List[str]:
    """Write ``num_samples`` toy pairs as img2dataset webdataset shards.

    Layout (see the module docstring)::

        root/{00000..}.tar   per sample, consecutive members  {key}.jpg   RGB JPEG
                                                              {key}.txt   caption, UTF-8
                                                              {key}.json  img2dataset metadata
                                                              {key}.cap.txt  aux caption (with_aux)
        root/sizes.json      {"00000.tar": count, ...}

    The JSON holds img2dataset's fields (``key``, ``caption``, ``url``, ``status: "success"``,
    ``error_message``, ``width``, ``height``, ``original_width``, ``original_height``, ``exif``,
    ``sha256`` of the JPEG) plus LAION's ``similarity`` column and ``synthetic_attributes`` (the
    drawn content). ``url`` is a fake ``synthetic://shapes/{split}/{key}``.

    Args:
        root: output folder (created). Shards of ours are overwritten; other ``.tar`` files there
            raise ``FileExistsError`` (they would be read with ours).
        num_samples: number of pairs (>= 1).
        samples_per_shard: pairs per shard (the last shard may hold fewer).
        seed, split: sample ``i`` is drawn with ``default_rng([seed, SPLIT_IDS[split], i])``.
        image_size: side of the square images.
        with_aux: also write the aux caption member ``{key}.cap.txt``.

    Returns:
        The shard paths, in order.
    """
    num_samples = _check_count('num_samples', num_samples, 1)
    samples_per_shard = _check_count('samples_per_shard', samples_per_shard, 1)
    _split_id(split)
    num_shards = math.ceil(num_samples / samples_per_shard)
    names = [f'{shard:05d}.tar' for shard in range(num_shards)]
    os.makedirs(root, exist_ok=True)
    stale = sorted(set(n for n in os.listdir(root) if n.endswith('.tar')) - set(names))
    if stale:
        raise FileExistsError(f'{root} already holds shards {stale[:5]} that this call would not '
                              f'write ({num_shards} shards); use an empty folder')
    sizes: Dict[str, int] = {}
    paths = []
    for shard, name in enumerate(names):
        first = shard * samples_per_shard
        indices = range(first, min(first + samples_per_shard, num_samples))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode='w', format=tarfile.USTAR_FORMAT) as tar:
            for index in indices:
                key = _sample_key(index)
                sample = draw_image_text_sample(seed, index, split, image_size)
                jpeg = encode_jpeg(sample['image'])
                meta = dict(key=key, caption=sample['caption'],
                            url=f'synthetic://shapes/{split}/{key}', status='success',
                            error_message=None, width=image_size, height=image_size,
                            original_width=image_size, original_height=image_size, exif=None,
                            sha256=hashlib.sha256(jpeg).hexdigest(),
                            similarity=sample['similarity'],
                            synthetic_attributes=sample['attributes'])
                _tar_member(tar, f'{key}.jpg', jpeg)
                _tar_member(tar, f'{key}.txt', sample['caption'].encode('utf-8'))
                _tar_member(tar, f'{key}.json', json.dumps(meta, sort_keys=True).encode('utf-8'))
                if with_aux:
                    _tar_member(tar, f'{key}.{AUX_CAPTION_SUFFIX}',
                                sample['caption_aux'].encode('utf-8'))
        path = osp.join(root, name)
        _atomic_write(path, buffer.getvalue())
        sizes[name] = len(indices)
        paths.append(path)
    _atomic_write(osp.join(root, 'sizes.json'),
                  (json.dumps(sizes, indent=1, sort_keys=True) + '\n').encode('utf-8'))
    return paths


def write_image_text_tsv(root: str, num_samples: int, seed: int = 0, image_size: int = 64,
                         with_aux: bool = False, split: str = 'train',
                         tsv_name: str = 'captions.tsv', image_dir: str = 'images',
                         caption_template: Optional[str] = None) -> str:
    """Write ``num_samples`` toy pairs as an image folder plus a caption TSV.

    Layout::

        root/images/{key}.jpg     RGB JPEG
        root/captions.tsv         images/{key}.jpg<TAB>caption[<TAB>aux caption], one line per
                                  sample, no header, paths relative to root, UTF-8

    Args:
        root: output folder (created); existing files of the same names are overwritten.
        num_samples, seed, split, image_size, with_aux: as :func:`write_image_text_shards`
            (the same arguments give the same samples as there).
        tsv_name, image_dir: file and folder names inside ``root``.
        caption_template: write every caption in this wording (fields ``colour``, ``shape``,
            ``size``, ``background``) instead of the drawn one; images are unchanged.

    Returns:
        The TSV path.
    """
    num_samples = _check_count('num_samples', num_samples, 1)
    _split_id(split)
    os.makedirs(osp.join(root, image_dir), exist_ok=True)
    lines = []
    for index in range(num_samples):
        key = _sample_key(index)
        sample = draw_image_text_sample(seed, index, split, image_size)
        rel_path = f'{image_dir}/{key}.jpg'
        _atomic_write(osp.join(root, rel_path), encode_jpeg(sample['image']))
        caption = sample['caption']
        if caption_template is not None:
            caption = _fix_articles(caption_template.format(**{
                name: sample['attributes'][name]
                for name in ('colour', 'shape', 'size', 'background')}))
        columns = [rel_path, caption] + ([sample['caption_aux']] if with_aux else [])
        lines.append('\t'.join(columns))
    tsv_path = osp.join(root, tsv_name)
    _atomic_write(tsv_path, ('\n'.join(lines) + '\n').encode('utf-8'))
    return tsv_path


def make_toy_corpus(root: str, num_train: int = 64, num_val: int = 16, seed: int = 0,
                    image_size: int = 64, samples_per_shard: int = 16,
                    with_aux: bool = True) -> Dict[str, object]:
    """Create (once) a toy train set in shards and a disjoint held-out val set in a TSV.

    Layout::

        root/train/{00000..}.tar, root/train/sizes.json     split 'train'
        root/val/images/*.jpg, root/val/captions.tsv         split 'val' (new draws),
                                                             captions 'a {colour} {shape}'
        root/toy_corpus.json                                 the parameters (marker)

    The val images are independent draws (split ``'val'``), so no val sample repeats a train
    sample; the caption vocabulary and the (colour, shape) contents are shared, as a held-out
    set should. The call is idempotent: when the marker records the same parameters nothing is
    written; otherwise ``train/``, ``val/`` and the marker are replaced. Concurrent callers (ranks
    of one job on one machine) serialise on a lock file, ``root/.toy_corpus.lock``.

    Returns:
        ``dict(root, train_dir, train_shards (list of paths), train_urls (brace pattern
        'root/train/{00000..00003}.tar'), train_sizes (sizes.json path), val_dir, val_tsv,
        num_train, num_val, created (bool: this call wrote the data))``.
    """
    num_train = _check_count('num_train', num_train, 1)
    num_val = _check_count('num_val', num_val, 1)
    samples_per_shard = _check_count('samples_per_shard', samples_per_shard, 1)
    params = dict(version=_CORPUS_VERSION, num_train=num_train, num_val=num_val, seed=int(seed),
                  image_size=int(image_size), samples_per_shard=samples_per_shard,
                  with_aux=bool(with_aux))
    num_shards = math.ceil(num_train / samples_per_shard)
    train_dir, val_dir = osp.join(root, 'train'), osp.join(root, 'val')
    shards = [osp.join(train_dir, f'{i:05d}.tar') for i in range(num_shards)]
    last = f'{num_shards - 1:05d}'
    result: Dict[str, object] = dict(
        root=root, train_dir=train_dir, train_shards=shards,
        train_urls=osp.join(train_dir, f'{{00000..{last}}}.tar' if num_shards > 1
                            else '00000.tar'),
        train_sizes=osp.join(train_dir, 'sizes.json'), val_dir=val_dir,
        val_tsv=osp.join(val_dir, 'captions.tsv'), num_train=num_train, num_val=num_val,
        created=False)

    os.makedirs(root, exist_ok=True)
    marker = osp.join(root, _CORPUS_MARKER)
    with open(osp.join(root, '.toy_corpus.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _read_marker(marker) == params and all(osp.isfile(p) for p in shards) and \
                    osp.isfile(result['val_tsv']):
                return result
            if osp.exists(marker):
                os.remove(marker)  # a crash below must not leave a marker of the old corpus
            for folder in (train_dir, val_dir):
                shutil.rmtree(folder, ignore_errors=True)
            write_image_text_shards(train_dir, num_train, samples_per_shard, seed, image_size,
                                    with_aux, split='train')
            write_image_text_tsv(val_dir, num_val, seed, image_size, with_aux, split='val',
                                 caption_template=VAL_CAPTION_TEMPLATE)
            _atomic_write(marker, (json.dumps(params, indent=1, sort_keys=True) + '\n').encode())
            result['created'] = True
            return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_marker(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # missing or half-written: regenerate
        return None


# ------------------------------------------------------------------------------------------------
# face crops (image only, MCF)
# ------------------------------------------------------------------------------------------------
def _counts(num_images: Union[None, int, Mapping[str, int]], split: str, default: int) -> int:
    if num_images is None:
        return default
    if isinstance(num_images, Mapping):
        return int(num_images.get(split, default))
    return int(num_images)


def make_synthetic_toy_image_text(root: str, num_images: Optional[Mapping[str, int]] = None,
                                  image_size: int = 64, seed: int = 0, progress: bool = False,
                                  **options) -> str:
    """:func:`make_toy_corpus` with the writer signature of ``SYNTHETIC_MAKERS``.

    Takes ``num_train`` / ``num_val`` (config style) or ``num_images=dict(train=, val=)`` (as
    ``tools/misc/make_synthetic_data.py`` passes; ``test`` is ignored); defaults 64 / 16.
    ``progress`` is accepted and ignored (the corpus takes seconds).
    """
    num_train = options.pop('num_train', _counts(num_images, 'train', 64))
    num_val = options.pop('num_val', _counts(num_images, 'val', 16))
    make_toy_corpus(root, num_train, num_val, seed=seed, image_size=image_size, **options)
    return root


#: ``synthetic_data['kind']`` -> writer (see :func:`~faceanalysis.datasets.synthetic.
#: prepare_synthetic_data`).
SYNTHETIC_MAKERS['toy_image_text'] = make_synthetic_toy_image_text
