"""FaRL's colour augmentations of the warped image (farl_protocol.md §5.2, §5.3).

FaRL applies them to a float image in [0, 1]. Our pipelines keep mmcv's 0-255 scale (the data
preprocessor normalises with 0-255 mean/std), so every transform here works on the 0-255 scale
with ``max_value=255``: a uint8 input is converted to float32 and the output is float32 in
[0, 255] (the same numbers as FaRL's times 255, with no extra rounding). After ``TanhWarp`` the
image is already float32. Draws come from the global ``np.random`` state (seeded per dataloader
worker by MMEngine).
"""
from __future__ import annotations

from typing import Dict, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from faceanalysis.registry import TRANSFORMS

__all__ = ['RandomGray', 'RandomGamma', 'RandomBoxBlur']


def _as_float(img: np.ndarray) -> np.ndarray:
    return np.asarray(img).astype(np.float32, copy=False)


@TRANSFORMS.register_module()
class RandomGray(BaseTransform):
    """With probability ``prob`` (FaRL 0.1) replace the image by its luma, on all 3 channels.

    Args:
        prob: probability of converting.
        channel_order: ``'bgr'`` (mmcv's ``LoadImageFromFile`` default) or ``'rgb'``; picks the
            ``cv2.COLOR_*2GRAY`` weights so the luma is the same as FaRL's RGB conversion.
    """

    def __init__(self, prob: float = 0.1, channel_order: str = 'bgr') -> None:
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        self.prob = float(prob)
        self.channel_order = channel_order

    def transform(self, results: Dict) -> Dict:
        img = _as_float(results['img'])
        if np.random.uniform() < self.prob:
            code = cv2.COLOR_BGR2GRAY if self.channel_order == 'bgr' else cv2.COLOR_RGB2GRAY
            gray = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), code)
            img = np.repeat(gray[..., None], 3, axis=2)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, channel_order={self.channel_order!r})'


@TRANSFORMS.register_module()
class RandomGamma(BaseTransform):
    """Clip to [0, max_value], then ``max_value * (img / max_value) ** g`` with ``g`` drawn
    uniformly from ``gammas`` (FaRL: sqrt, identity, square, i.e. 0.5, 1, 2; applied always)."""

    def __init__(self, gammas: Sequence[float] = (0.5, 1.0, 2.0),
                 max_value: float = 255.0) -> None:
        self.gammas = tuple(float(g) for g in gammas)
        if not self.gammas or min(self.gammas) <= 0:
            raise ValueError(f'gammas must be positive, got {gammas}')
        self.max_value = float(max_value)

    def transform(self, results: Dict) -> Dict:
        img = np.clip(_as_float(results['img']), 0.0, self.max_value)
        gamma = self.gammas[np.random.randint(len(self.gammas))]
        if gamma != 1.0:
            img = (np.power(img / self.max_value, gamma) * self.max_value).astype(np.float32)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(gammas={self.gammas}, max_value={self.max_value})'


@TRANSFORMS.register_module()
class RandomBoxBlur(BaseTransform):
    """Box blur of random size (blueprint ``RandomBlur``): ``k = int(S * U(0, max_ratio))``
    with ``S = max(H, W)`` (512 on FaRL's canvas, so k in 0..5); if ``k > 1`` apply
    ``cv2.blur(img, (k, k))`` (about 61% of the time for 0.01 on 512)."""

    def __init__(self, max_ratio: float = 0.01) -> None:
        self.max_ratio = float(max_ratio)

    def transform(self, results: Dict) -> Dict:
        img = _as_float(results['img'])
        k = int(max(img.shape[:2]) * np.random.uniform(0.0, self.max_ratio))
        if k > 1:
            blurred = cv2.blur(img, (k, k))
            img = blurred[..., None] if blurred.ndim < img.ndim else blurred
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_ratio={self.max_ratio})'
