"""Synthetic face datasets written in the on-disk layout of the real releases.

They let every config, tool and test run end to end without downloading anything: a config may
carry ``synthetic_data = dict(kind='lapa', root=...)`` and ``tools/train.py`` / ``tools/test.py``
then create the data on first use (:func:`prepare_synthetic_data`).

LaPa (:func:`make_synthetic_lapa`) follows the release (shared/docs/farl_protocol.md §6.1)::

    root/{train,val,test}/images/<name>.jpg     RGB face, JPEG
    root/{train,val,test}/labels/<name>.png     uint8 label map, values 0..10 (table below)
    root/{train,val,test}/landmarks/<name>.txt  '106', then 106 lines 'x y' in pixels

Label values are LaPa's, in FaRL's naming (farl_protocol.md §2.3); "left" is the image left::

    0 background  1 skin  2 left brow  3 right brow  4 left eye  5 right eye  6 nose
    7 upper lip  8 inner mouth  9 lower lip  10 hair

The 106 points follow LaPa's scheme (the left/right pairs of mmpose's ``lapa`` metainfo):
0-32 contour (image left to right over the chin, 16 the chin), 33-37 / 38-41 left brow
(upper outer->inner, lower inner->outer), 42-46 / 47-50 right brow (upper inner->outer, lower
outer->inner), 51-54 nose bridge (54 the nose tip), 55-65 nostril line (60 the middle), 66-73 left
eye contour (outer corner, upper lid, inner corner, lower lid) and 74 its centre, 75-82 / 83 the
mirrored right eye, 84-95 outer lips (84 left corner, 87 upper middle, 90 right corner, 93 lower
middle), 96-103 inner lips (96 / 100 inner corners), 104 / 105 left / right pupil. FaRL's five
alignment points 104, 105, 54, 84, 90 (farl_protocol.md §3.2) fall inside the left eye, right eye,
nose and mouth (lips or inner mouth) regions of the label map.

Every image is drawn from its own generator seeded with ``(seed, split, index)``: the same seed
gives the same files, and a larger split keeps the first images of a smaller one.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Dict, Mapping, Optional, Tuple

import cv2
import numpy as np

__all__ = [
    'LAPA_CLASSES', 'LAPA_PALETTE', 'LAPA_SPLITS', 'make_synthetic_lapa', 'render_synthetic_face',
    'read_lapa_landmarks', 'prepare_synthetic_data', 'SYNTHETIC_MAKERS'
]

LAPA_CLASSES = ('background', 'skin', 'left_eyebrow', 'right_eyebrow', 'left_eye', 'right_eye',
                'nose', 'upper_lip', 'inner_mouth', 'lower_lip', 'hair')
LAPA_PALETTE = ((0, 0, 0), (204, 153, 128), (102, 51, 0), (153, 76, 0), (0, 153, 255),
                (0, 204, 204), (255, 178, 102), (255, 0, 76), (127, 0, 51), (204, 0, 102),
                (76, 38, 0))
LAPA_SPLITS = ('train', 'val', 'test')
DEFAULT_NUM_IMAGES = {'train': 16, 'val': 4, 'test': 4}

# label values
BACKGROUND, SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE = 0, 1, 2, 3, 4, 5
NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP, HAIR = 6, 7, 8, 9, 10

_SHIFT = 4  # sub-pixel bits for cv2.fillPoly: image and label use the same rasterisation
_SCALE = float(1 << _SHIFT)


# ------------------------------------------------------------------------------------------------
# canonical face: x right, y down, face half-width 1, centre (0, 0)
# ------------------------------------------------------------------------------------------------
def _arc(x0: float, x1: float, y0: float, y1: float, bulge: float, num: int) -> np.ndarray:
    """``num`` points from (x0, y0) to (x1, y1), displaced by ``bulge * sin(pi u)`` in y."""
    u = np.linspace(0., 1., num)
    return np.stack([x0 + (x1 - x0) * u, y0 + (y1 - y0) * u + bulge * np.sin(np.pi * u)], axis=1)


def _ellipse(cx: float, cy: float, ax: float, ay: float, t0: float, t1: float,
             num: int) -> np.ndarray:
    t = np.linspace(t0, t1, num)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def _face_geometry(rng: np.random.Generator, pixel: float) -> Tuple[list, np.ndarray]:
    """Region polygons in drawing order and the 106 landmarks, in canonical coordinates.

    ``pixel`` is the size of one image pixel in canonical units: the lips keep at least one pixel
    of thickness around their corners, so that the corner landmarks always fall on a lip pixel.

    Returns:
        ``[(label, polygon), ...]`` (later regions overwrite earlier ones) and (106, 2) points.
    """
    u = rng.uniform
    pts = np.zeros((106, 2))
    regions = []
    face_h = u(1.2, 1.4)  # face half-height (half-width is 1)

    # hair: behind the face, down to about ear level, plus a fringe over the forehead
    hair_ay = face_h * u(0.95, 1.1)
    hair_cy = -u(0.3, 0.45)
    hair_ax = u(1.1, 1.3)
    hair_bottom = u(0.0, 0.5)
    t_bottom = np.arcsin(np.clip((hair_bottom - hair_cy) / hair_ay, -1, 1))
    hair = _ellipse(0, hair_cy, hair_ax, hair_ay, np.pi - t_bottom, 2 * np.pi + t_bottom, 64)
    regions.append((HAIR, hair))

    # skin: the face ellipse; its lower part carries the contour landmarks 0-32
    regions.append((SKIN, _ellipse(0, 0, 1.0, face_h, 0, 2 * np.pi, 96)))
    t = np.linspace(np.pi + 0.22, -0.22, 33)
    pts[0:33] = np.stack([np.cos(t), face_h * np.sin(t)], axis=1)

    # fringe: hair covering the top of the face, ending in a wavy line above the brows
    fringe_y = -face_h * u(0.55, 0.75)
    top = _ellipse(0, 0, 1.0, face_h, np.pi + 0.05, 2 * np.pi - 0.05, 40)
    top = top[top[:, 1] < fringe_y + 0.02]
    if len(top) >= 2:
        x_wave = np.linspace(top[-1, 0], top[0, 0], 12)
        y_wave = fringe_y + u(-0.06, 0.06) * np.sin(x_wave * u(3, 7) + u(0, 6))
        regions.append((HAIR, np.concatenate([top, np.stack([x_wave, y_wave], axis=1)])))

    eye_y = u(-0.24, -0.1)
    eye_dx = u(0.34, 0.42)
    eye_hw = u(0.14, 0.19)  # half-width of an eye
    brow_y = eye_y - u(0.22, 0.32)
    brow_hw = eye_hw + u(0.06, 0.12)
    brow_th = u(0.05, 0.09)
    brow_arch = -u(0.03, 0.09)

    for side, brow_label, eye_label in ((-1, LEFT_BROW, LEFT_EYE), (1, RIGHT_BROW, RIGHT_EYE)):
        # brow: upper arc outer->inner, lower arc inner->outer (clockwise on screen)
        cx = side * (eye_dx + u(-0.02, 0.04))
        outer, inner = cx + side * brow_hw, cx - side * brow_hw
        tilt = u(-0.04, 0.04)
        upper = _arc(outer, inner, brow_y + tilt + brow_th * 0.3, brow_y - tilt, brow_arch, 5)
        lower = _arc(inner, outer, brow_y - tilt + brow_th, brow_y + tilt + brow_th * 0.6,
                     brow_arch * 0.8, 6)[:-1]
        if side < 0:  # left brow: 33-37 upper (outer->inner), 38-41 lower (inner->outer)
            pts[33:38] = upper
            pts[38:42] = lower[1:]
        else:  # right brow: 42-46 upper (inner->outer), 47-50 lower (outer->inner)
            pts[42:47] = upper[::-1]
            pts[47:51] = lower[1:][::-1]
        regions.append((brow_label, np.concatenate([upper, lower])))

        # eye: almond from outer corner over the upper lid to the inner corner and back
        ecx = side * eye_dx
        ecy = eye_y + u(-0.02, 0.02)
        half_w = eye_hw * u(0.9, 1.1)
        open_up, open_lo = u(0.06, 0.11), u(0.04, 0.08)
        e_outer, e_inner = ecx + side * half_w, ecx - side * half_w
        lid_up = _arc(e_outer, e_inner, ecy, ecy, -open_up, 17)
        lid_lo = _arc(e_inner, e_outer, ecy, ecy, open_lo, 17)
        contour = np.concatenate([lid_up[[0, 4, 8, 12, 16]], lid_lo[[4, 8, 12]]])
        centre = np.array([ecx, ecy + (open_lo - open_up) * 0.5])
        pupil = centre + np.array([u(-0.25, 0.25) * half_w, u(-0.15, 0.15) * open_lo])
        if side < 0:  # 66 outer, 67-69 upper lid, 70 inner, 71-73 lower lid (inner->outer)
            pts[66:74] = contour
            pts[74], pts[104] = centre, pupil
        else:  # mirrored: 75 inner, 76-78 upper lid (inner->outer), 79 outer, 80-82 lower lid
            pts[75:83] = np.concatenate([contour[4::-1], contour[7:4:-1]])
            pts[83], pts[105] = centre, pupil
        regions.append((eye_label, np.concatenate([lid_up, lid_lo[1:-1]])))

    # nose: bridge 51-54 (54 the tip), nostril line 55-65 (60 the middle, below the tip)
    nose_top = eye_y + u(0.0, 0.05)
    tip_y = u(0.25, 0.38)
    base_y = tip_y + u(0.07, 0.11)
    nose_hw = u(0.16, 0.24)
    bridge_hw = u(0.05, 0.08)
    nose_dx = u(-0.04, 0.04)
    pts[51:55] = np.stack([np.full(4, nose_dx), np.linspace(nose_top, tip_y, 4)], axis=1)
    nostrils = _arc(-nose_hw, nose_hw, base_y - 0.05, base_y - 0.05, 0.05, 11)
    nostrils[:, 0] += nose_dx
    pts[55:66] = nostrils
    left_side = np.array([[nose_dx - bridge_hw, nose_top],
                          [nose_dx - bridge_hw * 1.3, tip_y - 0.12],
                          [nose_dx - nose_hw - 0.03, base_y - 0.06]])
    right_side = left_side[::-1] * [-1, 1] + [2 * nose_dx, 0]
    nose_poly = np.concatenate([left_side, nostrils + [0, 0.02], right_side])
    regions.append((NOSE, nose_poly))

    # mouth: outer loop 84-95, inner loop 96-103; lips drawn slightly past the corner points
    mouth_y = base_y + u(0.2, 0.3)
    mouth_hw = u(0.28, 0.4)
    mouth_dx = u(-0.04, 0.04)
    inner_hw = mouth_hw * u(0.72, 0.85)
    opening = u(0.03, 0.14)  # inner mouth height
    up_th, lo_th = u(0.06, 0.1), u(0.08, 0.13)  # lip thickness in the middle
    smile = u(-0.05, 0.05)  # corners up (negative) or down
    corner_y = mouth_y + smile
    left = np.array([mouth_dx - mouth_hw, corner_y])
    right = np.array([mouth_dx + mouth_hw, corner_y])
    xo = np.linspace(mouth_dx - mouth_hw, mouth_dx + mouth_hw, 7)  # 84..90
    prof = np.sin(np.pi * (xo - xo[0]) / (xo[-1] - xo[0]))
    bow = 1 - 0.25 * np.exp(-((xo - mouth_dx) / (0.25 * mouth_hw))**2)  # cupid's bow dip
    inner_up_y = mouth_y - opening / 2
    inner_lo_y = mouth_y + opening / 2
    outer_up = np.stack([xo, corner_y + (inner_up_y - corner_y - up_th * bow) * prof], axis=1)
    outer_lo = np.stack([xo[::-1], corner_y + (inner_lo_y - corner_y + lo_th) * prof], axis=1)
    xi = np.linspace(mouth_dx - inner_hw, mouth_dx + inner_hw, 5)  # 96..100
    prof_i = np.sin(np.pi * (xi - xi[0]) / (xi[-1] - xi[0]))
    inner_up = np.stack([xi, corner_y + (inner_up_y - corner_y) * prof_i], axis=1)
    inner_lo = np.stack([xi[::-1], corner_y + (inner_lo_y - corner_y) * prof_i], axis=1)
    pts[84:91] = outer_up
    pts[91:96] = outer_lo[1:-1]
    pts[96:101] = inner_up
    pts[101:104] = inner_lo[1:-1]
    ext = np.array([max(0.05, 1.3 * pixel), 0])
    cap_x, cap_y = np.array([0.8 * pixel, 0]), np.array([0, max(0.8 * pixel, 0.01)])
    up_poly = np.concatenate([[left - ext, left - cap_x - cap_y], outer_up[1:-1],
                              [right + cap_x - cap_y, right + ext], inner_up[::-1]])
    lo_poly = np.concatenate([[right + ext, right + cap_x + cap_y], outer_lo[1:-1],
                              [left - cap_x + cap_y, left - ext], inner_up])
    regions.append((UPPER_LIP, up_poly))
    regions.append((LOWER_LIP, lo_poly))
    regions.append((INNER_MOUTH, np.concatenate([inner_up, inner_lo[1:-1]])))
    return regions, pts


def _colour(rng: np.random.Generator, base, spread: float) -> np.ndarray:
    return np.clip(np.asarray(base, float) + rng.uniform(-spread, spread, 3), 0, 255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour gradient plus random shapes and noise (RGB float)."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    img = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            axes = tuple(int(v) for v in rng.integers(size // 16 + 1, size // 3 + 2, 2))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            end = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, centre, end, colour, int(rng.integers(1, max(2, size // 20))))
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return img


def _to_fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _SCALE).astype(np.int32).reshape(-1, 1, 2)


def render_synthetic_face(rng: np.random.Generator,
                          image_size: int = 128) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one synthetic face.

    Args:
        rng: source of every random choice.
        image_size: side of the square image in pixels.

    Returns:
        ``image`` (H, W, 3) uint8 RGB, ``label`` (H, W) uint8 with LaPa values and ``landmarks``
        (106, 2) float64 pixel coordinates (x, y), OpenCV convention (pixel centres on integers).
    """
    # similarity transform canonical -> pixels: scale (face half-width), rotation, centre
    scale = image_size * rng.uniform(0.2, 0.28)
    regions, canon_pts = _face_geometry(rng, pixel=1. / scale)
    theta = np.deg2rad(rng.uniform(-25, 25))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) * scale
    centre = image_size * (0.5 + rng.uniform(-0.06, 0.06, 2)) + np.array([0, 0.15 * scale])

    def to_pixels(points: np.ndarray) -> np.ndarray:
        return points @ rot.T + centre

    skin = _colour(rng, rng.choice([[233, 192, 165], [198, 140, 105], [141, 85, 56],
                                    [250, 215, 190]]), 20)
    hair_c = _colour(rng, rng.choice([[30, 20, 15], [90, 55, 30], [200, 160, 90],
                                      [120, 120, 120]]), 20)
    colours = {
        HAIR: hair_c,
        SKIN: skin,
        LEFT_BROW: hair_c * 0.6,
        RIGHT_BROW: hair_c * 0.6,
        LEFT_EYE: _colour(rng, [235, 235, 230], 15),
        RIGHT_EYE: None,
        NOSE: skin * rng.uniform(0.82, 0.92) + np.array([12, 0, 0]),
        UPPER_LIP: _colour(rng, [185, 70, 80], 25),
        LOWER_LIP: None,
        INNER_MOUTH: _colour(rng, [70, 20, 25], 15),
    }
    colours[RIGHT_EYE] = colours[LEFT_EYE]
    colours[LOWER_LIP] = np.clip(colours[UPPER_LIP] * rng.uniform(1.0, 1.15), 0, 255)

    image = _background(rng, image_size)
    label = np.zeros((image_size, image_size), np.uint8)
    pixel_regions = [(value, to_pixels(poly)) for value, poly in regions]
    for value, poly in pixel_regions:
        fixed = _to_fixed(poly)
        shade = np.clip(colours[value], 0, 255)
        cv2.fillPoly(image, [fixed], tuple(float(v) for v in shade), cv2.LINE_8, _SHIFT)
        cv2.fillPoly(label, [fixed], value, cv2.LINE_8, _SHIFT)

    landmarks = to_pixels(canon_pts)
    # irises (inside the eye regions only) and a nostril shadow, image-only details
    iris_r = scale * rng.uniform(0.04, 0.06)
    iris_c = tuple(float(v) for v in _colour(rng, rng.choice([[60, 40, 25], [70, 110, 150],
                                                             [80, 120, 70]]), 20))
    iris_layer = np.zeros_like(label)
    for index in (104, 105):
        cv2.circle(iris_layer, tuple(_to_fixed(landmarks[index])[0, 0]),
                   int(round(iris_r * _SCALE)), 1, -1, cv2.LINE_8, _SHIFT)
    iris_mask = (iris_layer > 0) & ((label == LEFT_EYE) | (label == RIGHT_EYE))
    image[iris_mask] = iris_c
    shadow = np.zeros_like(label)
    cv2.polylines(shadow, [_to_fixed(landmarks[55:66])], False, 1, max(1, int(scale * 0.03)),
                  cv2.LINE_8, _SHIFT)
    image[(shadow > 0) & (label == NOSE)] *= 0.8

    # shading across the face, blur and sensor noise
    light = rng.uniform(-0.15, 0.15, 2)
    yy, xx = (np.mgrid[0:image_size, 0:image_size] - image_size / 2) / image_size
    image *= (1 + light[0] * xx + light[1] * yy)[..., None]
    sigma = rng.uniform(0.3, 0.9)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0, rng.uniform(1, 5), image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, label, landmarks


def read_lapa_landmarks(path: str) -> np.ndarray:
    """Read a LaPa landmark file (first number: point count, then ``x y`` pairs) as (N, 2)."""
    with open(path) as f:
        values = f.read().split()
    count = int(values[0])
    coords = np.asarray(values[1:], dtype=np.float64)
    if coords.size != 2 * count:
        raise ValueError(f'{path}: header says {count} points but {coords.size} numbers follow')
    return coords.reshape(count, 2)


def _write_sample(split_dir: str, name: str, image: np.ndarray, label: np.ndarray,
                  landmarks: np.ndarray) -> None:
    if not cv2.imwrite(osp.join(split_dir, 'images', f'{name}.jpg'),
                       cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write {split_dir}/images/{name}.jpg')
    if not cv2.imwrite(osp.join(split_dir, 'labels', f'{name}.png'), label):
        raise OSError(f'could not write {split_dir}/labels/{name}.png')
    lines = [str(len(landmarks))] + [f'{x:.4f} {y:.4f}' for x, y in landmarks]
    with open(osp.join(split_dir, 'landmarks', f'{name}.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def make_synthetic_lapa(root: str, num_images: Optional[Mapping[str, int]] = None,
                        image_size: int = 128, seed: int = 0, progress: bool = False) -> str:
    """Write a synthetic dataset in LaPa's release layout.

    Args:
        root: output folder; ``root/{train,val,test}/{images,labels,landmarks}`` are created.
        num_images: images per split; splits left out get the default
            ``{'train': 16, 'val': 4, 'test': 4}``.
        image_size: side of the square images (at least 48).
        seed: base seed; image ``i`` of split ``s`` uses ``default_rng([seed, s, i])``.
        progress: show a tqdm bar.

    Returns:
        ``root``.
    """
    counts = dict(DEFAULT_NUM_IMAGES)
    counts.update(num_images or {})
    unknown = set(counts) - set(LAPA_SPLITS)
    if unknown:
        raise ValueError(f'unknown LaPa splits {sorted(unknown)}; use {LAPA_SPLITS}')
    if image_size < 48:  # below that the lips are sub-pixel and the checks above can fail
        raise ValueError(f'image_size must be at least 48, got {image_size}')
    total = sum(int(counts[split]) for split in LAPA_SPLITS)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc=f'synthetic LaPa -> {root}', unit='img')
    for split_id, split in enumerate(LAPA_SPLITS):
        split_dir = osp.join(root, split)
        for sub in ('images', 'labels', 'landmarks'):
            os.makedirs(osp.join(split_dir, sub), exist_ok=True)
        for index in range(int(counts[split])):
            rng = np.random.default_rng([seed, split_id, index])
            image, label, landmarks = render_synthetic_face(rng, image_size)
            _write_sample(split_dir, f'{split}_{index:05d}', image, label, landmarks)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return root


#: ``synthetic_data['kind']`` -> writer ``f(root, **options)``.
SYNTHETIC_MAKERS: Dict[str, Callable[..., str]] = {'lapa': make_synthetic_lapa}


def prepare_synthetic_data(spec: Mapping, logger: Optional[Callable[[str], None]] = None) -> bool:
    """Create the dataset a config's ``synthetic_data`` describes, if its root does not exist.

    ``spec`` is ``dict(kind='lapa', root=..., **options)``; the options go to the writer of
    :data:`SYNTHETIC_MAKERS`. The data is written to a temporary sibling folder that is renamed
    to ``root`` at the end, so several processes (ranks of one job) may call this concurrently:
    the first rename wins and the others discard their identical copy. Returns True if this call
    created the data.
    """
    spec = dict(spec)
    kind = spec.pop('kind')
    root = spec.pop('root')
    if kind not in SYNTHETIC_MAKERS:
        raise KeyError(f'unknown synthetic_data kind {kind!r}; known: {sorted(SYNTHETIC_MAKERS)}')
    if osp.exists(root):
        return False
    log = logger or print
    log(f'synthetic_data: {root} does not exist, generating a synthetic {kind} dataset there '
        f'({", ".join(f"{k}={v}" for k, v in sorted(spec.items())) or "defaults"})')
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(root))}.', dir=parent)
    try:
        SYNTHETIC_MAKERS[kind](tmp, **spec)
        try:
            os.rename(tmp, root)
        except OSError:
            if not osp.isdir(root):
                raise
            return False  # another process finished first
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    log(f'synthetic_data: wrote {root}')
    return True
