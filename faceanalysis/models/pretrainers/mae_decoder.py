"""``MAEDecoder``: MAE's lightweight pixel decoder, built from our transformer blocks.

MAE (and MCF, shared/docs/pretrain.md §3.1 step 2 and §3.2) decodes the encoder's visible tokens
into per-patch pixels: a linear embedding to the decoder width, a learned mask token at every
removed patch, a fixed 2-D sin-cos position table (zero CLS row), pre-LN blocks (erf GELU,
LayerNorm eps 1e-6), a final LayerNorm and a linear prediction of the ``p * p * 3`` pixel values of
each patch. The CLS output is dropped.

It reuses :class:`~faceanalysis.models.layers.Transformer` rather than timm's ``Block`` so one
attention implementation (SDPA, gradient checkpointing) serves every tower. Parameter names are
ours (``embed``, ``mask_token``, ``transformer.resblocks.*``, ``norm``, ``pred``); the pixel order
inside a patch is MAE's (row, column, channel), so a ``decoder_pred`` of an MAE / MCF checkpoint
maps onto ``pred`` unchanged.

:func:`init_mae_weights` (MAE's initialisation) lives here too and also serves the MCF encoder
and heads.
"""
from __future__ import annotations

from typing import Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from faceanalysis.registry import MODELS
from ..layers.pos_embed import sincos_2d_pos_embed
from ..layers.transformer import Attention, Transformer

__all__ = ['MAEDecoder', 'init_mae_weights', 'patchify', 'unpatchify']


def init_mae_weights(module: nn.Module) -> None:
    """MAE's initialisation of every sub-module of ``module``.

    Linear layers and the fused q|k|v projection (one (3D, D) matrix, as timm's ``qkv`` Linear):
    xavier-uniform weights, zero biases; LayerNorm: weight 1, bias 0. BatchNorm and convolutions
    are left to the caller (MAE initialises the patch embedding itself, see
    :meth:`MCFPretrainer._init_encoder`).
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, Attention):
            nn.init.xavier_uniform_(sub.in_proj_weight)
            if sub.in_proj_bias is not None:
                nn.init.zeros_(sub.in_proj_bias)
        elif isinstance(sub, nn.LayerNorm) and sub.elementwise_affine:
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, h*p, w*p) images -> (B, h*w, p*p*C) patches, row-major, pixels (row, col, channel)."""
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f'images {height}x{width} are not a multiple of the patch size '
                         f'{patch_size}')
    grid_h, grid_w = height // patch_size, width // patch_size
    patches = images.reshape(batch, channels, grid_h, patch_size, grid_w, patch_size)
    patches = patches.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
    return patches.reshape(batch, grid_h * grid_w, patch_size * patch_size * channels)


def unpatchify(patches: torch.Tensor, grid: Tuple[int, int], patch_size: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, h*w, p*p*C) -> (B, C, h*p, w*p)."""
    batch, length, values = patches.shape
    grid_h, grid_w = grid
    channels = values // (patch_size * patch_size)
    if length != grid_h * grid_w or channels * patch_size * patch_size != values:
        raise ValueError(f'patches {tuple(patches.shape)} do not fit a {grid_h}x{grid_w} grid '
                         f'of {patch_size}x{patch_size} patches')
    images = patches.reshape(batch, grid_h, grid_w, patch_size, patch_size, channels)
    images = images.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p, w, p)
    return images.reshape(batch, channels, grid_h * patch_size, grid_w * patch_size)


@MODELS.register_module()
class MAEDecoder(BaseModule):
    """Visible encoder tokens + kept indices -> per-patch pixel predictions.

    Args:
        in_dims: width D of the encoder tokens.
        grid_size: (h, w) patch grid of the images (fixed: the position table is not resized).
        patch_size: patch side p in pixels.
        in_channels: image channels predicted per pixel.
        embed_dims, num_layers, num_heads, feedforward_channels: decoder sizes (MAE / MCF
            ViT-B: 512, 8, 16, 2048).
        act: MLP activation of the blocks (MAE: erf ``'gelu'``).
        ln_eps: LayerNorm epsilon (MAE: 1e-6).
        grad_checkpointing: recompute decoder blocks in backward.
    """

    def __init__(self, in_dims: int, grid_size: Tuple[int, int], patch_size: int,
                 in_channels: int = 3, embed_dims: int = 512, num_layers: int = 8,
                 num_heads: int = 16, feedforward_channels: int = 2048, act: str = 'gelu',
                 ln_eps: float = 1e-6, grad_checkpointing: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.embed = nn.Linear(in_dims, embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(embed_dims))
        # Fixed table, recomputed from the grid: not a learned tensor, so not checkpointed.
        self.register_buffer('positional_embedding',
                             sincos_2d_pos_embed(embed_dims, self.grid_size), persistent=False)
        self.transformer = Transformer(embed_dims, num_layers, num_heads, feedforward_channels,
                                       act=act, ln_eps=ln_eps,
                                       grad_checkpointing=grad_checkpointing)
        self.norm = nn.LayerNorm(embed_dims, eps=ln_eps)
        self.pred = nn.Linear(embed_dims, patch_size * patch_size * in_channels)
        init_mae_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, kept_indices: torch.Tensor) -> torch.Tensor:
        """Decode.

        Args:
            latent: encoder output (B, 1 + K, D): CLS, then the K visible patches in the order
                of ``kept_indices``.
            kept_indices: (B, K) long, the grid index (row-major) of each visible patch.

        Returns:
            (B, N, p*p*C) predictions for all N patches (visible ones included), grid order.
        """
        batch, length, _ = latent.shape
        if kept_indices.shape != (batch, length - 1):
            raise ValueError(f'MAEDecoder: kept_indices {tuple(kept_indices.shape)} do not match '
                             f'the {length - 1} visible tokens of latent {tuple(latent.shape)}')
        tokens = self.embed(latent)
        dims = tokens.shape[-1]
        canvas = self.mask_token.to(tokens.dtype).expand(batch, self.num_patches, dims)
        index = kept_indices.unsqueeze(-1).expand(-1, -1, dims)
        patches = canvas.scatter(1, index, tokens[:, 1:])
        tokens = torch.cat([tokens[:, :1], patches], dim=1)
        tokens = tokens + self.positional_embedding.to(tokens.dtype)
        tokens, _ = self.transformer(tokens)
        return self.pred(self.norm(tokens))[:, 1:]

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, N, p*p*C) predictions -> (B, C, H, W) image on this decoder's grid."""
        return unpatchify(patches, self.grid_size, self.patch_size)
