"""Heatmap targets and soft-argmax decoding of FaRL's face-alignment head (torch, vectorised).

shared/docs/farl_protocol.md §3.1, §4.1, §4.2. Conventions: pixel centres on integer
coordinates; points are ``(..., 2)`` ``(x, y)``; a map of size ``(h, w)`` covers
``[-0.5, w - 0.5] x [-0.5, h - 0.5]``. **Normalised coordinates** ``n`` in ``[0, 1]`` describe a
position independently of the grid: ``n = (p + 0.5) / [w, h]`` and back ``p = n * [w, h] - 0.5``
(FaRL's ``normalize_points`` / ``denormalize_points``). The same normalised point therefore has
pixel coordinates ``n * 512 - 0.5`` on the 512 warped canvas, ``n * 128 - 0.5`` on the 128 loss
grid and ``n * 112 - 0.5`` on the 112 head output.

* :func:`render_truncated_gaussians` is FaRL's ``points2heatmap`` (the CUDA ``p2i`` op with the
  ``gaussian_awing`` kernel and ``reduce='max'``) without the CUDA extension: the weight
  ``exp(-r^2 * 16 / (2 R^2))`` (a Gaussian of ``sigma = R / 4``, 1.25 px for FaRL's ``R = 5``) is
  evaluated at integer pixels with ``r <= R`` and is 0 elsewhere; where several points of one
  channel overlap, the maximum wins. The peak is 1 only when a point lies exactly on a pixel
  centre.
* :func:`soft_argmax` is FaRL's ``heatmap2points`` (``t_scale=None``): the expectation of the
  pixel coordinates under the (non-negative) map, ``x = sum(x h) / max(sum(h), 1e-6)``,
  returned normalised.

**Soft-argmax bias.** For a Gaussian blob well inside the map the expectation is its centre up
to ~1e-3 px (6e-4 px measured on 1000 random points: the sampling error of sigma 1.25 is about
exp(-2 pi^2 sigma^2) and the circular cut at r <= 5 drops weights below exp(-8)). Two effects
bias it, both present in FaRL and kept:

* **Border bias.** Mass of a blob that falls outside the map is lost, so the expectation moves
  *inwards* (measured for sigma 1.25, R 5): 0.55 px for a point on the edge pixel, 0.18 px at
  1.3 px from it, 0.04 px at 2.3 px, 0.004 px at 3.3 px; a point outside the map decodes inside
  it. From ~3 px inwards (the "interior") it is below 0.01 px.
* **Background bias.** On sigmoid activations every pixel contributes (``sigmoid`` never reaches
  0), pulling the estimate towards the map centre in proportion to the background mass; training
  drives the background logits down, which is what makes FaRL's decoder precise.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ['normalize_points', 'denormalize_points', 'render_truncated_gaussians',
           'heatmap_targets', 'soft_argmax', 'heatmap_scores']

Size = Union[int, Sequence[int]]


def _hw(size: Size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(s) for s in size)
    return h, w


def _wh_tensor(size: Size, ref: Tensor) -> Tensor:
    h, w = _hw(size)
    return torch.tensor([float(w), float(h)], dtype=ref.dtype, device=ref.device)


def normalize_points(points: Tensor, size: Size) -> Tensor:
    """Pixel points of a ``size`` (h, w) grid -> normalised ``(p + 0.5) / [w, h]``."""
    return (points + 0.5) / _wh_tensor(size, points)


def denormalize_points(points: Tensor, size: Size) -> Tensor:
    """Normalised points -> pixel points of a ``size`` (h, w) grid: ``n * [w, h] - 0.5``."""
    return points * _wh_tensor(size, points) - 0.5


def render_truncated_gaussians(points: Tensor, size: Size, radius: float = 5.0,
                               sigma: Optional[float] = None,
                               points_per_channel: bool = False) -> Tensor:
    """Truncated Gaussians at pixel positions of a ``size`` grid.

    Args:
        points: pixel coordinates ``(x, y)`` on the target grid: ``(..., K, 2)``, one channel per
            point (FaRL: one per landmark), or with ``points_per_channel`` ``(..., K, P, 2)``,
            ``P`` points drawn into each of the ``K`` channels and combined by maximum where
            they overlap (FaRL's ``p2i(reduce='max')``). Non-finite points draw nothing.
        size: target ``(h, w)`` (or one int).
        radius: ``R``; pixels with ``r <= R`` get a weight, the others 0.
        sigma: Gaussian sigma; ``None`` = FaRL's ``R / 4``.
        points_per_channel: see ``points``.

    Returns:
        ``(..., K, h, w)`` maps in ``[0, 1]`` with the dtype / device of ``points``; no gradient
        flows to the points (targets).
    """
    if points.shape[-1] != 2:
        raise ValueError(f'points must end with (x, y), got shape {tuple(points.shape)}')
    if points_per_channel and points.dim() < 3:
        raise ValueError(f'points_per_channel needs (..., K, P, 2), got {tuple(points.shape)}')
    h, w = _hw(size)
    radius = float(radius)
    sigma = radius / 4.0 if sigma is None else float(sigma)
    if radius <= 0 or sigma <= 0:
        raise ValueError(f'radius and sigma must be positive, got {radius}, {sigma}')
    points = points.detach()
    if not points.is_floating_point():
        points = points.float()
    xs = torch.arange(w, dtype=points.dtype, device=points.device)
    ys = torch.arange(h, dtype=points.dtype, device=points.device)
    dx2 = (xs - points[..., 0:1]) ** 2  # (..., w)
    dy2 = (ys - points[..., 1:2]) ** 2  # (..., h)
    # separable Gaussian (two 1-D exps instead of one per pixel), then the circular r <= R cut
    gx = torch.exp(-dx2 / (2.0 * sigma * sigma))
    gy = torch.exp(-dy2 / (2.0 * sigma * sigma))
    inside = (dy2[..., :, None] + dx2[..., None, :]) <= radius * radius  # NaN -> False
    weight = (gy[..., :, None] * gx[..., None, :]).masked_fill_(~inside, 0.0)
    if points_per_channel:
        weight = weight.amax(dim=-3) if points.shape[-2] else weight.sum(dim=-3)
    return weight


def heatmap_targets(normalized_points: Tensor, size: Size = 128, radius: float = 5.0,
                    sigma: Optional[float] = None) -> Tensor:
    """FaRL's ``points2heatmap``: ``(B, K, 2)`` normalised points -> ``(B, K, h, w)`` targets.

    The points are placed on the target grid with ``q = n * [w, h] - 0.5`` and drawn with
    :func:`render_truncated_gaussians` (``R = 5`` px, ``sigma = 1.25`` px on the 128 grid).
    """
    return render_truncated_gaussians(denormalize_points(normalized_points.detach(), size), size,
                                      radius, sigma)


def soft_argmax(heatmaps: Tensor, eps: float = 1e-6) -> Tensor:
    """FaRL's ``heatmap2points``: ``(..., h, w)`` non-negative maps -> ``(..., 2)`` normalised
    points ``((x + 0.5) / w, (y + 0.5) / h)`` with ``x = sum(x h) / max(sum(h), eps)``.

    Differentiable; apply it to activated maps (sigmoid for FaRL), not to logits. See the module
    docstring for the border and background biases.
    """
    h, w = heatmaps.shape[-2:]
    xs = torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device)
    total = heatmaps.sum(dim=(-2, -1)).clamp(min=eps)
    x = (heatmaps.sum(dim=-2) * xs).sum(dim=-1) / total
    y = (heatmaps.sum(dim=-1) * ys).sum(dim=-1) / total
    return normalize_points(torch.stack([x, y], dim=-1), (h, w))


def heatmap_scores(heatmaps: Tensor) -> Tensor:
    """Per-channel confidence ``(..., K)``: the maximum of each activated map (what mmpose's
    heatmap codecs report as ``keypoint_scores``)."""
    return heatmaps.flatten(-2).amax(dim=-1)
