"""``MIMHead``: FaRL's masked-image-modelling head (``lm_transformer``, ``ln_lm``, ``lm_head``).

FaRL runs the corrupted copy of the batch through the shared ViT and then through this head: an
extra transformer of ``num_layers`` blocks of the ViT's width and heads (QuickGELU), CLS dropped,
a LayerNorm, the masked positions kept, and a linear layer to the target's outputs
(pretrain.md §2.1, §2.2). The parameter names are FaRL's released ones without the ``visual.``
prefix (``lm_transformer.resblocks.{i}.*``, ``ln_lm.*``, ``lm_head.*``), so exporting
``mim_head.X`` as ``visual.X`` gives the layout of ``FaRL-...-ep64.pth`` (one block, vocab 8192,
inferred from the file size, §2.5).

Why new code: the blocks are our :class:`~faceanalysis.models.layers.Transformer` (batch-first,
SDPA, OpenAI parameter names), the same as the towers, so no key mapping is needed; BEiT's /
mmpretrain's heads use other names and no extra transformer.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from faceanalysis.registry import MODELS
from ..layers.transformer import Transformer

__all__ = ['MIMHead']


@MODELS.register_module()
class MIMHead(BaseModule):
    """Predict the MIM target of each masked patch from the ViT's output tokens.

    Args:
        embed_dims: token width D (the ViT's).
        num_heads: attention heads of ``lm_transformer`` (the ViT's).
        num_outputs: K, the width of ``lm_head``: the vocabulary size for discrete targets (FaRL:
            8192 dVAE tokens), the feature size D_t for feature-regression targets.
        num_layers: blocks of ``lm_transformer`` (FaRL's released ep64: 1; 0 is allowed).
        feedforward_channels: MLP width of the blocks (default 4 * D).
        act: activation of the blocks (FaRL: ``'quick_gelu'``).
        ln_eps: LayerNorm epsilon of the blocks and ``ln_lm``.
        grad_checkpointing: recompute the blocks in backward.

    Initialisation: ``lm_transformer`` with CLIP's scheme (as the towers), ``ln_lm`` at (1, 0),
    ``lm_head`` weight truncated normal std 0.02 and bias 0 (BEiT's head init; FaRL's is not
    released).
    """

    def __init__(self, embed_dims: int, num_heads: int, num_outputs: int, num_layers: int = 1,
                 feedforward_channels: Optional[int] = None, act: str = 'quick_gelu',
                 ln_eps: float = 1e-5, grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 0:
            raise ValueError(f'num_layers must be >= 0, got {num_layers}')
        if num_outputs < 1:
            raise ValueError(f'num_outputs must be >= 1, got {num_outputs}')
        self.embed_dims = embed_dims
        self.num_outputs = num_outputs
        self.lm_transformer = Transformer(embed_dims, num_layers, num_heads,
                                          feedforward_channels or 4 * embed_dims, act=act,
                                          ln_eps=ln_eps, grad_checkpointing=grad_checkpointing)
        self.ln_lm = nn.LayerNorm(embed_dims, eps=ln_eps)
        self.lm_head = nn.Linear(embed_dims, num_outputs)
        self.lm_transformer.init_clip_weights()
        nn.init.trunc_normal_(self.lm_head.weight, std=0.02)
        nn.init.zeros_(self.lm_head.bias)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Outputs at the masked patches.

        Args:
            tokens: (B, 1 + N, D) output of the ViT's last block for the corrupted images, CLS
                first (before the tower's ``ln_post``).
            mask: (B, N) bool, True = masked patch (row-major patch order).

        Returns:
            (M, K) with M = ``mask.sum()``, in the order of ``mask.nonzero()`` (sample-major,
            then patch index), i.e. aligned with ``targets[mask]``.
        """
        if tokens.dim() != 3 or tokens.shape[-1] != self.embed_dims:
            raise ValueError(f'tokens must be (B, 1 + N, {self.embed_dims}), '
                             f'got {tuple(tokens.shape)}')
        if mask.shape != (tokens.shape[0], tokens.shape[1] - 1):
            raise ValueError(f'mask {tuple(mask.shape)} does not match the '
                             f'{tokens.shape[1] - 1} patch tokens of a batch of {tokens.shape[0]}')
        tokens, _ = self.lm_transformer(tokens)
        # LayerNorm and the linear layer act per token: keep the masked ones first (cheaper).
        masked = tokens[:, 1:][mask.bool()]
        return self.lm_head(self.ln_lm(masked))
