"""The OpenAI-CLIP text tower: token + position embedding, causal pre-LN transformer, pooling, proj.

Parameter names are OpenAI CLIP's text tower, which in a CLIP state dict sits at the *top level*
(no prefix)::

    token_embedding.weight [V, W]   positional_embedding [ctx, W]
    transformer.resblocks.{i}.*     ln_final.{weight,bias}   text_projection [W, E]

To keep those names both in a standalone text encoder and inside :class:`~faceanalysis.models.
FaceCLIP` (where they must sit next to ``visual.*`` and ``logit_scale``), the tower is written as
a mixin, :class:`TextTowerMixin`, that registers its modules directly on the module that uses it
and runs them in :meth:`TextTowerMixin.encode_text`. :class:`TextTransformer` is that mixin on a
bare :class:`~mmengine.model.BaseModule`, so the text part of any CLIP state dict loads into it at
identity, and ``FaceCLIP`` is the same mixin next to a ``visual`` tower: one implementation, no
key renaming hooks, and ``named_parameters()`` equal to the checkpoint keys.

Pooling (``pool``), as in the released text towers:

* ``'eot_argmax'``: the token at ``argmax(token_ids)`` (OpenAI / FaRL / open_clip: the EOT id
  49407 is the largest id of the BPE vocabulary; HF CLIP with ``eos_token_id == 2``).
* ``'eos'``: the first position equal to ``eos_id`` (HF CLIP with a real ``eos_token_id``).
* ``'first'``: position 0 (FLIP's BERT-style text tower).
* ``'last'``: position ``L - 1`` (open_clip's ``'last'``, used with an appended CLS token).
* ``'last_valid'``: the last token that is not ``pad_id`` (TencentPretrain's ``pooling: last``).
"""
from __future__ import annotations

from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from faceanalysis.registry import MODELS
from ..layers.transformer import Transformer

__all__ = ['TextTowerMixin', 'TextTransformer', 'TEXT_POOLS', 'tokenize', 'CLIP_SOT_ID',
           'CLIP_EOT_ID']

TEXT_POOLS = ('eot_argmax', 'eos', 'first', 'last', 'last_valid')

#: Special ids of CLIP's BPE vocabulary (49408 entries; EOT is the largest id).
CLIP_SOT_ID, CLIP_EOT_ID = 49406, 49407


def tokenize(texts: Union[str, List[str]], context_length: int = 77) -> torch.Tensor:
    """CLIP BPE tokenization (open_clip's tokenizer, whose vocabulary ships with the package).

    Text is cleaned and lower-cased as OpenAI's ``clip.tokenize`` does; each row is
    ``[SOT] + tokens + [EOT]`` zero-padded to ``context_length``, and a text that is too long is
    truncated with EOT kept as its last token.

    Returns:
        LongTensor (B, context_length) on the CPU.
    """
    from open_clip.tokenizer import tokenize as open_clip_tokenize  # heavy import, done lazily
    return open_clip_tokenize(texts, context_length=context_length)


class TextTowerMixin:
    """Builds an OpenAI-CLIP text tower on ``self`` and encodes token ids with it.

    The using class must be an ``nn.Module`` and call :meth:`build_text_tower` in its
    ``__init__`` (after ``super().__init__()``). Besides the parameters listed in the module
    docstring it sets the plain attributes ``vocab_size``, ``context_length``, ``text_width``,
    ``text_causal``, ``text_pool``, ``text_pad_id`` and ``text_eos_id``.
    """

    def build_text_tower(self, vocab_size: int = 49408, context_length: int = 77,
                         width: int = 512, layers: int = 12, heads: Optional[int] = None,
                         feedforward_channels: Optional[int] = None,
                         embed_dim: Optional[int] = 512, act: str = 'quick_gelu',
                         ln_eps: float = 1e-5, causal: bool = True, pool: str = 'eot_argmax',
                         pad_id: int = 0, eos_id: int = CLIP_EOT_ID,
                         grad_checkpointing: bool = False) -> None:
        """Create the text parameters (see :class:`TextTransformer` for the arguments)."""
        if pool not in TEXT_POOLS:
            raise ValueError(f'unknown text pool {pool!r}; choose one of {TEXT_POOLS}')
        heads = heads or max(width // 64, 1)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.text_width = width
        self.text_causal = causal
        self.text_pool = pool
        self.text_pad_id = pad_id
        self.text_eos_id = eos_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, feedforward_channels or 4 * width,
                                       act=act, ln_eps=ln_eps,
                                       grad_checkpointing=grad_checkpointing)
        self.ln_final = nn.LayerNorm(width, eps=ln_eps)
        if embed_dim:
            self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        else:
            self.text_projection = None
        self.reset_text_parameters()

    def reset_text_parameters(self) -> None:
        """OpenAI CLIP's initialisation of the text tower."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.transformer.init_clip_weights()
        nn.init.ones_(self.ln_final.weight)
        nn.init.zeros_(self.ln_final.bias)
        if self.text_projection is not None:
            nn.init.normal_(self.text_projection, std=self.text_width**-0.5)

    @property
    def text_output_dim(self) -> int:
        """Width of :meth:`encode_text`'s output (E, or W without ``text_projection``)."""
        proj = self.text_projection
        return proj.shape[1] if proj is not None else self.text_width

    def tokenize(self, texts: Union[str, List[str]]) -> torch.Tensor:
        """CLIP BPE token ids (B, ``context_length``) for this tower (see :func:`tokenize`)."""
        if self.vocab_size < CLIP_EOT_ID + 1:
            raise ValueError(f'this text tower has a {self.vocab_size}-entry vocabulary, not '
                             "CLIP's BPE (49408 entries): tokenize with the model's own tokenizer")
        return tokenize(texts, context_length=self.context_length)

    def encode_text_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Per-token features after ``ln_final``: (B, L) long -> (B, L, W), L <= context_length."""
        if token_ids.dim() != 2:
            raise ValueError(f'token ids must be (B, L), got shape {tuple(token_ids.shape)}')
        length = token_ids.shape[1]
        if length > self.context_length:
            raise ValueError(f'{length} tokens exceed the context length {self.context_length}')
        x = self.token_embedding(token_ids)
        x = x + self.positional_embedding[:length].to(x.dtype)
        x, _ = self.transformer(x, is_causal=self.text_causal)
        return self.ln_final(x)

    def pool_text(self, tokens: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Select one feature per sequence from (B, L, W) according to ``text_pool``."""
        pool = self.text_pool
        if pool == 'first':
            return tokens[:, 0]
        if pool == 'last':
            return tokens[:, -1]
        if pool == 'eot_argmax':
            index = token_ids.argmax(dim=-1)
        elif pool == 'eos':
            index = (token_ids == self.text_eos_id).int().argmax(dim=-1)
        else:  # last_valid: where the running count of non-pad tokens first reaches its maximum
            index = (token_ids != self.text_pad_id).int().cumsum(dim=-1).argmax(dim=-1)
        return tokens[torch.arange(tokens.shape[0], device=tokens.device), index]

    def encode_text(self, token_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Text embedding: (B, L) long token ids -> (B, E) (L2-normalised if ``normalize``)."""
        pooled = self.pool_text(self.encode_text_tokens(token_ids), token_ids)
        if self.text_projection is not None:
            pooled = pooled @ self.text_projection
        return F.normalize(pooled, dim=-1) if normalize else pooled


@MODELS.register_module()
class TextTransformer(TextTowerMixin, BaseModule):
    """OpenAI-CLIP text encoder with OpenAI's parameter names (no prefix).

    Args:
        vocab_size: rows of ``token_embedding`` (49408 for CLIP's BPE).
        context_length: rows of ``positional_embedding`` (77); shorter inputs use the first rows.
        width: token width W.
        layers: transformer blocks.
        heads: attention heads; default ``width // 64`` (OpenAI's rule).
        feedforward_channels: MLP hidden width; default ``4 * width``.
        embed_dim: columns of ``text_projection`` (E); ``None`` or 0 builds no projection.
        act: MLP activation, ``'quick_gelu' | 'gelu' | 'gelu_tanh'``.
        ln_eps: LayerNorm epsilon.
        causal: causal self-attention (CLIP, FaRL, HF); False for bidirectional text (FLIP).
        pool: one of :data:`TEXT_POOLS` (see the module docstring).
        pad_id: padding id, for ``pool='last_valid'``.
        eos_id: end-of-text id, for ``pool='eos'``.
        grad_checkpointing: recompute blocks in backward.
        init_cfg: MMEngine init config.

    Example:
        >>> text = TextTransformer(width=64, layers=2, heads=4, embed_dim=32)
        >>> text(torch.tensor([[49406, 320, 49407, 0]])).shape
        torch.Size([1, 32])
    """

    def __init__(self, vocab_size: int = 49408, context_length: int = 77, width: int = 512,
                 layers: int = 12, heads: Optional[int] = None,
                 feedforward_channels: Optional[int] = None, embed_dim: Optional[int] = 512,
                 act: str = 'quick_gelu', ln_eps: float = 1e-5, causal: bool = True,
                 pool: str = 'eot_argmax', pad_id: int = 0, eos_id: int = CLIP_EOT_ID,
                 grad_checkpointing: bool = False, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.build_text_tower(vocab_size=vocab_size, context_length=context_length, width=width,
                              layers=layers, heads=heads,
                              feedforward_channels=feedforward_channels, embed_dim=embed_dim,
                              act=act, ln_eps=ln_eps, causal=causal, pool=pool, pad_id=pad_id,
                              eos_id=eos_id, grad_checkpointing=grad_checkpointing)

    def forward(self, token_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Same as :meth:`encode_text`."""
        return self.encode_text(token_ids, normalize=normalize)
