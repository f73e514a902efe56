"""A synthetic CelebAMask-HQ written in the release layout (DS_DATA.md, farl_protocol.md §6)::

    root/CelebA-HQ-img/<id>.jpg                                     RGB face, image_size²
    root/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png    0/255 masks, (image_size/2)²
    root/CelebA-HQ-to-CelebA-mapping.txt                            'idx orig_idx orig_file'
    root/list_eval_partition.txt                                    '<orig_file> <0|1|2>'

The masks are half the image size, as the release's 512 masks of 1024 images. HQ ids are spread
over 0..29,999 (so several ``id // 2000`` folders occur), each mapped to a CelebA file
``NNNNNN.jpg`` in the range of its partition (train 1..162,770, val ..182,637, test ..202,599);
the partition file also lists CelebA files without an HQ image, as the real one does.

Faces come from :func:`~faceanalysis.datasets.synthetic.render_synthetic_face`; its LaPa regions
become the ``skin``, ``l_brow`` ... ``hair`` masks, and neck, cloth, ears, eyeglasses, hat,
earrings and necklace are added as overlapping masks (a part is only written when present). The
image shows, at every pixel, the part that wins in FaRL's overwrite order
(:data:`~faceanalysis.datasets.celebamaskhq.CELEBAMASKHQ_PARTS`), so the merged label matches it.

Importing this module adds ``'celebamaskhq'`` to
:data:`~faceanalysis.datasets.synthetic.SYNTHETIC_MAKERS` (``faceanalysis.datasets`` imports it),
so ``prepare_synthetic_data(dict(kind='celebamaskhq', root=...))`` and
``tools/misc/make_synthetic_data.py celebamaskhq OUT`` work.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, Mapping, Optional

import cv2
import numpy as np

from .celebamaskhq import (CELEBAMASKHQ_NUM_IMAGES, CELEBAMASKHQ_PARTS, IMAGE_DIR, MAPPING_FILE,
                           MASK_DIR, PARTITION_FILE, SPLITS, celebamaskhq_part_path)
from .synthetic import SYNTHETIC_MAKERS, render_synthetic_face

__all__ = ['make_synthetic_celebamaskhq', 'render_synthetic_celebamaskhq',
           'CELEBA_PARTITION_RANGES']

DEFAULT_NUM_IMAGES = {'train': 16, 'val': 4, 'test': 4}
#: 1-based CelebA file numbers of each partition (list_eval_partition.txt).
CELEBA_PARTITION_RANGES = {0: (1, 162770), 1: (162771, 182637), 2: (182638, 202599)}
_LAPA_TO_PART = {1: 'skin', 2: 'l_brow', 3: 'r_brow', 4: 'l_eye', 5: 'r_eye', 6: 'nose',
                 7: 'u_lip', 8: 'mouth', 9: 'l_lip', 10: 'hair'}
_VALUE = {part: value for value, part in enumerate(CELEBAMASKHQ_PARTS, start=1)}


def _pt(point: np.ndarray) -> tuple:
    return int(round(point[0])), int(round(point[1]))


def render_synthetic_celebamaskhq(rng: np.random.Generator, image_size: int = 128):
    """Draw one face with CelebAMask-HQ part masks.

    Returns:
        ``image`` (S, S, 3) uint8 RGB and ``masks``: part suffix -> (S, S) bool at image
        resolution (only the parts present; they overlap).
    """
    image, lapa, lm = render_synthetic_face(rng, image_size)
    masks: Dict[str, np.ndarray] = {}
    face = (lapa >= 1) & (lapa <= 9)
    masks['skin'] = face.copy()
    for value, part in _LAPA_TO_PART.items():
        if value != 1 and (lapa == value).any():
            masks[part] = lapa == value

    # face frame from the landmarks: width, centre, "down" (perpendicular to the eye line)
    left, right = lm[0], lm[32]
    width = float(np.linalg.norm(right - left))
    centre = (left + right) / 2
    across = (lm[83] - lm[74]) / max(np.linalg.norm(lm[83] - lm[74]), 1e-6)
    down = np.array([-across[1], across[0]])
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    size = (image_size, image_size)

    def blank() -> np.ndarray:
        return np.zeros(size, np.uint8)

    def poly(points) -> np.ndarray:
        out = blank()
        cv2.fillPoly(out, [np.round(np.asarray(points)).astype(np.int32)], 1)
        return out > 0

    def ellipse(c, axes, thickness=-1, start=0, end=360) -> np.ndarray:
        out = blank()
        cv2.ellipse(out, _pt(c), (max(1, int(axes[0])), max(1, int(axes[1]))), angle, start, end,
                    1, thickness)
        return out > 0

    far = 2.0 * image_size
    # neck: from inside the face (skin overwrites it) down past the image border
    neck_hw = width * rng.uniform(0.2, 0.28)
    top = centre + down * width * 0.2
    masks['neck'] = poly([top - across * neck_hw, top + across * neck_hw,
                          top + across * neck_hw + down * far, top - across * neck_hw + down * far])
    chin = lm[16]
    if rng.random() < 0.85:
        c0 = chin + down * width * rng.uniform(0.3, 0.5)
        hw = width * rng.uniform(0.7, 1.0)
        masks['cloth'] = poly([c0 - across * hw * 0.6, c0 + across * hw * 0.6,
                               c0 + across * hw * 1.5 + down * far,
                               c0 - across * hw * 1.5 + down * far])
    if rng.random() < 0.75:  # ears at the face sides, under skin and hair
        for part, side, anchor in (('l_ear', -1, left), ('r_ear', 1, right)):
            c = anchor + across * side * width * 0.04 - down * width * 0.12
            masks[part] = ellipse(c, (width * 0.09, width * 0.17))
            if part == 'l_ear' and rng.random() < 0.3:
                masks['ear_r'] = ellipse(c + down * width * 0.17, (width * 0.035,) * 2)
    if rng.random() < 0.35:  # eyeglasses: lenses around both eyes and a bridge
        lens = (width * rng.uniform(0.15, 0.19), width * rng.uniform(0.1, 0.13))
        glasses = ellipse(lm[74], lens) | ellipse(lm[83], lens)
        bridge = blank()
        cv2.line(bridge, _pt(lm[74] + across * lens[0]), _pt(lm[83] - across * lens[0]), 1,
                 max(1, int(width * 0.03)))
        masks['eye_g'] = glasses | (bridge > 0)
    if rng.random() < 0.2:  # hat over the top of the head
        masks['hat'] = ellipse(centre - down * width * rng.uniform(0.75, 0.95),
                               (width * 0.65, width * 0.35))
    if rng.random() < 0.2:  # necklace: an arc over the neck
        masks['neck_l'] = ellipse(chin + down * width * 0.2, (width * 0.28, width * 0.18),
                                  max(1, int(width * 0.025)), 10, 170)
    masks = {part: mask for part, mask in masks.items() if mask.any()}

    # the image shows the winning part (FaRL's order) where a new part wins
    winner = np.zeros(size, np.uint8)
    for part in CELEBAMASKHQ_PARTS:
        if part in masks:
            winner[masks[part]] = _VALUE[part]
    skin_colour = image[lapa == 1].mean(axis=0) if (lapa == 1).any() else np.array([200, 150, 120])
    colours = {
        'neck': skin_colour * 0.88, 'l_ear': skin_colour * 0.95, 'r_ear': skin_colour * 0.95,
        'cloth': rng.uniform(0, 255, 3), 'hat': rng.uniform(0, 255, 3),
        'ear_r': np.array([230, 190, 60.]), 'neck_l': np.array([200, 200, 210.]),
    }
    out = image.astype(np.float32)
    for part, colour in colours.items():
        region = winner == _VALUE[part]
        out[region] = colour + rng.normal(0, 4, (int(region.sum()), 3))
    lens_region = winner == _VALUE['eye_g']
    tint = rng.uniform(20, 90, 3)
    out[lens_region] = 0.45 * out[lens_region] + 0.55 * tint
    image = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return image, masks


def _half(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    small = cv2.resize(mask.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return np.where(small >= 0.5, 255, 0).astype(np.uint8)


def make_synthetic_celebamaskhq(root: str, num_images: Optional[Mapping[str, int]] = None,
                                image_size: int = 128, seed: int = 0,
                                progress: bool = False) -> str:
    """Write a synthetic dataset in CelebAMask-HQ's release layout.

    Args:
        root: output folder (created).
        num_images: images per split; splits left out get ``{'train': 16, 'val': 4, 'test': 4}``.
        image_size: side of the square JPEG images (even, at least 64); masks are half of it.
        seed: base seed; the same seed writes the same files.
        progress: show a tqdm bar.

    Returns:
        ``root``.
    """
    counts = dict(DEFAULT_NUM_IMAGES)
    counts.update(num_images or {})
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f'unknown CelebAMask-HQ splits {sorted(unknown)}; use {tuple(SPLITS)}')
    if image_size < 64 or image_size % 2:
        raise ValueError(f'image_size must be even and at least 64, got {image_size}')
    total = sum(int(counts[s]) for s in SPLITS)
    if total > CELEBAMASKHQ_NUM_IMAGES:
        raise ValueError(f'at most {CELEBAMASKHQ_NUM_IMAGES} images, got {total}')

    meta = np.random.default_rng([seed, 1000])
    hq_ids = meta.choice(CELEBAMASKHQ_NUM_IMAGES, size=total, replace=False)  # random order
    entries = []  # (hq_id, celeba number, partition)
    start = 0
    for split, group in SPLITS.items():
        n = int(counts[split])
        lo, hi = CELEBA_PARTITION_RANGES[group]
        numbers = meta.choice(np.arange(lo, hi + 1), size=n, replace=False)
        entries += [(int(h), int(k), group) for h, k in zip(hq_ids[start:start + n], numbers)]
        start += n
    # CelebA files without an HQ image, which the partition list holds too
    taken = {k for _, k, _ in entries}
    extra = []
    for group, (lo, hi) in CELEBA_PARTITION_RANGES.items():
        for k in meta.choice(np.arange(lo, hi + 1), size=3, replace=False):
            if int(k) not in taken:
                extra.append((int(k), group))

    os.makedirs(osp.join(root, IMAGE_DIR), exist_ok=True)
    mask_dir = osp.join(root, MASK_DIR)
    with open(osp.join(root, MAPPING_FILE), 'w') as f:
        f.write(f'{"idx":<12}{"orig_idx":<12}orig_file\n')
        for hq_id, number, _ in sorted(entries):
            f.write(f'{hq_id:<12}{number - 1:<12}{number:06d}.jpg\n')
    with open(osp.join(root, PARTITION_FILE), 'w') as f:
        rows = sorted([(k, g) for _, k, g in entries] + extra)
        f.writelines(f'{k:06d}.jpg {g}\n' for k, g in rows)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc=f'synthetic CelebAMask-HQ -> {root}', unit='img')
    for hq_id, _, _ in sorted(entries):
        image, masks = render_synthetic_celebamaskhq(np.random.default_rng([seed, hq_id]),
                                                     image_size)
        path = osp.join(root, IMAGE_DIR, f'{hq_id}.jpg')
        if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f'could not write {path}')
        for part, mask in masks.items():
            small = _half(mask)
            if not small.any():
                continue
            path = celebamaskhq_part_path(mask_dir, hq_id, part)
            os.makedirs(osp.dirname(path), exist_ok=True)
            if not cv2.imwrite(path, small):
                raise OSError(f'could not write {path}')
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return root


SYNTHETIC_MAKERS.setdefault('celebamaskhq', make_synthetic_celebamaskhq)
