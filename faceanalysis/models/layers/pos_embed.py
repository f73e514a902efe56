"""Absolute position embeddings: FaRL's resize rule and MAE's fixed 2-D sin-cos table."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ['resize_pos_embed', 'sincos_2d_pos_embed']


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Tuple[int, int],
                     dst_grid: Tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """Resize a (num_prefix + h*w, D) table to another patch grid, as FaRL does.

    The prefix rows (the CLS token) are kept; the grid part is reshaped to (1, D, h, w), resized
    with ``F.interpolate(mode='bicubic', align_corners=False)`` (no antialias, unlike timm's
    default) and flattened back row-major. Computed in fp32, returned in the input dtype.

    Args:
        pos_embed: (num_prefix + src_h * src_w, D).
        src_grid: (src_h, src_w) of the table.
        dst_grid: (dst_h, dst_w) wanted.
        num_prefix_tokens: leading rows that are not part of the grid.

    Returns:
        (num_prefix + dst_h * dst_w, D).
    """
    src_h, src_w = src_grid
    expected = num_prefix_tokens + src_h * src_w
    if pos_embed.shape[0] != expected:
        raise ValueError(f'position embedding has {pos_embed.shape[0]} rows, expected '
                         f'{num_prefix_tokens} + {src_h}x{src_w} = {expected}')
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    prefix, grid = pos_embed[:num_prefix_tokens], pos_embed[num_prefix_tokens:]
    dims = grid.shape[-1]
    grid = grid.float().reshape(1, src_h, src_w, dims).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_grid), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(-1, dims).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=0)


def sincos_2d_pos_embed(embed_dims: int, grid: Tuple[int, int],
                        num_prefix_tokens: int = 1) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos table with zero rows for the prefix tokens.

    The first half of the channels encodes the column (x) index and the second half the row (y)
    index, each as ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000^(-k / (D/4))``, matching the
    table stored in MAE / MCF checkpoints.

    Returns:
        (num_prefix + h * w, embed_dims) float32.
    """
    if embed_dims % 4:
        raise ValueError(f'sin-cos position embedding needs embed_dims % 4 == 0, got {embed_dims}')
    height, width = grid
    quarter = embed_dims // 4
    omega = 1.0 / 10000**(torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing='ij')

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    table = torch.cat([encode(xs), encode(ys)], dim=1)
    prefix = torch.zeros(num_prefix_tokens, embed_dims, dtype=torch.float64)
    return torch.cat([prefix, table], dim=0).float()
