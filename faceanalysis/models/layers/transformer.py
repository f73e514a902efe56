"""The pre-LN transformer shared by every image and text tower.

Parameter names follow OpenAI CLIP (``transformer.resblocks.{i}.{ln_1, attn.in_proj_weight,
attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``), so FaRL and OpenAI-layout
checkpoints load at identity and every other layout maps onto it one-to-one
(shared/docs/pretrain.md §8). Unlike ``nn.MultiheadAttention``, tensors are batch-first and
attention runs through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ['QuickGELU', 'build_activation', 'Attention', 'ResidualAttentionBlock', 'Transformer',
           'ACTIVATIONS']


class QuickGELU(nn.Module):
    """OpenAI CLIP's sigmoid approximation of GELU: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    'quick_gelu': QuickGELU,                           # OpenAI CLIP, FaRL, HF CLIP as released
    'gelu': nn.GELU,                                   # erf GELU: MAE / MCF, ALIP
    'gelu_tanh': lambda: nn.GELU(approximate='tanh'),  # FLIP, TencentPretrain's vision tower
}


def build_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f'unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}')
    return ACTIVATIONS[name]()


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names.

    Args:
        embed_dims: token width D.
        num_heads: heads; D must be divisible by it.
        qkv_bias: learn the bias of the fused q|k|v projection.
        attn_drop: dropout on attention weights (training only).
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims, embed_dims))
        if qkv_bias:
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        else:
            self.register_parameter('in_proj_bias', None)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        # nn.MultiheadAttention's default init; towers re-initialise with CLIP's scheme.
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        """x: (B, L, D) -> (B, L, D). ``attn_mask`` is SDPA's (bool: True = attend)."""
        batch, length, dims = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.num_heads, dims // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, D/heads)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal and attn_mask is None,
            dropout_p=self.attn_drop if self.training else 0.)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dims))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, with stochastic depth."""

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int,
                 act: str = 'quick_gelu', ln_eps: float = 1e-5, qkv_bias: bool = True,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dims, eps=ln_eps)
        self.attn = Attention(embed_dims, num_heads, qkv_bias=qkv_bias)
        self.ln_2 = nn.LayerNorm(embed_dims, eps=ln_eps)
        self.mlp = nn.Sequential(OrderedDict([
            ('c_fc', nn.Linear(embed_dims, feedforward_channels)),
            ('act', build_activation(act)),
            ('c_proj', nn.Linear(feedforward_channels, embed_dims)),
        ]))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln_1(x), attn_mask=attn_mask, is_causal=is_causal))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` with per-block taps and gradient checkpointing.

    Args:
        embed_dims, num_layers, num_heads, feedforward_channels: the usual sizes.
        act: ``'quick_gelu' | 'gelu' | 'gelu_tanh'``.
        ln_eps: LayerNorm epsilon (1e-5 CLIP family, 1e-6 MAE / FLIP).
        drop_path_rate: stochastic depth, increasing linearly to this value over the blocks.
        grad_checkpointing: recompute each block in backward to save activation memory.
    """

    def __init__(self, embed_dims: int, num_layers: int, num_heads: int,
                 feedforward_channels: int, act: str = 'quick_gelu', ln_eps: float = 1e-5,
                 qkv_bias: bool = True, drop_path_rate: float = 0.,
                 grad_checkpointing: bool = False) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.grad_checkpointing = grad_checkpointing
        # plain floats, not torch.linspace: the tower must also build under torch.device('meta')
        rates = [drop_path_rate * i / max(num_layers - 1, 1) for i in range(num_layers)]
        self.resblocks = nn.ModuleList([
            ResidualAttentionBlock(embed_dims, num_heads, feedforward_channels, act=act,
                                   ln_eps=ln_eps, qkv_bias=qkv_bias, drop_path=rate)
            for rate in rates
        ])

    def init_clip_weights(self) -> None:
        """OpenAI CLIP's initialisation (std scaled by width and depth)."""
        width, layers = self.embed_dims, self.num_layers
        proj_std = width**-0.5 * (2 * layers)**-0.5
        attn_std = width**-0.5
        fc_std = (2 * width)**-0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            if block.attn.in_proj_bias is not None:
                nn.init.zeros_(block.attn.in_proj_bias)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.zeros_(block.mlp.c_fc.bias)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
            nn.init.zeros_(block.mlp.c_proj.bias)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False,
                out_indices: Sequence[int] = ()) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Run the blocks on x: (B, L, D).

        Returns:
            The output of the last block, and the outputs of the blocks in ``out_indices``
            (0-based, in the order given).
        """
        wanted = {index: position for position, index in enumerate(out_indices)}
        taps: List[Optional[torch.Tensor]] = [None] * len(out_indices)
        for index, block in enumerate(self.resblocks):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, attn_mask, is_causal, use_reentrant=False)
            else:
                x = block(x, attn_mask=attn_mask, is_causal=is_causal)
            if index in wanted:
                taps[wanted[index]] = x
        return x, taps  # type: ignore[return-value]
