"""``CodebookTokenizer``: discrete MIM targets (FaRL's cross-entropy objective) from a teacher.

FaRL predicts, for each masked patch, its token id under a DALL-E dVAE with an 8192-entry
vocabulary (BEiT's tokenizer; pretrain.md §2.1). Those weights cannot be downloaded here, so this
tokenizer gives ids of the same kind from what we have: the frozen teacher's patch features
(:class:`~faceanalysis.models.mim_targets.teacher_features.FrozenTeacherTarget`), L2-normalised,
assigned to the nearest entry (highest cosine) of a FIXED codebook of V unit vectors. The student
is then trained exactly as FaRL: ``lm_head`` outputs V logits and the loss is the cross-entropy at
the masked patches.

The codebook:

* the intended real use is a learned codebook file in the teacher's feature space, shape
  (V, D_t): e.g. a VQ-KD-style (BEiT v2) codebook trained on this teacher's features, or k-means
  centroids of its normalised patch features (``.npy`` or a ``.pth`` holding the tensor);
* without a file, V random unit vectors drawn from ``seed`` (deterministic across runs and
  ranks): a random-projection quantiser (BEST-RQ-like). It works for tests and as a baseline,
  but many codes may stay unused.

Either way the rows are L2-normalised and kept as a buffer (saved in checkpoints), and features
go through the same ``feature_norm`` as the file's codebook was built with (default per-token
LayerNorm, then L2).

Why new code: no tokenizer of this kind exists in the stack; it reuses our ViT and converters.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from faceanalysis.registry import MODELS
from .teacher_features import FrozenTeacherTarget

__all__ = ['CodebookTokenizer', 'load_codebook']

#: Similarities are computed for this many tokens at a time, bounding memory to
#: ``_CHUNK_TOKENS * V`` floats (8192 codes: 128 MiB).
_CHUNK_TOKENS = 4096


def load_codebook(path: str, key: Optional[str] = None) -> torch.Tensor:
    """Read a (V, D) codebook from ``.npy`` or a torch / safetensors file.

    Args:
        path: ``.npy`` (read with ``allow_pickle=False``) or a file
            :func:`faceanalysis.converters.load_checkpoint_file` reads, holding a tensor or a
            dict of tensors.
        key: entry to take from a dict; optional when the dict holds exactly one tensor or a
            ``'codebook'`` entry.

    Returns:
        float32 (V, D).
    """
    path = os.fspath(path)
    if path.endswith('.npy'):
        if not os.path.exists(path):
            raise FileNotFoundError(f'codebook {path} not found')
        value = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        from faceanalysis.converters import load_checkpoint_file
        value = load_checkpoint_file(path)
        if isinstance(value, dict):
            tensors = {name: item for name, item in value.items()
                       if isinstance(item, torch.Tensor)}
            if key is None:
                key = 'codebook' if 'codebook' in tensors else \
                    next(iter(tensors)) if len(tensors) == 1 else None
            if key not in tensors:
                raise KeyError(f'codebook {path}: cannot tell which entry is the codebook; '
                               f'pass codebook_key=... (tensor entries: {sorted(tensors)})')
            value = tensors[key]
    if not isinstance(value, torch.Tensor) or value.dim() != 2:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f'codebook {path} must be a 2-D (V, D) tensor, got {shape}')
    return value.float()


@MODELS.register_module()
class CodebookTokenizer(FrozenTeacherTarget):
    """Token ids of teacher patch features on a fixed codebook; cross-entropy loss.

    Args:
        teacher: teacher ViT config (see :class:`FrozenTeacherTarget`).
        codebook: path of a (V, D_t) codebook (``.npy`` / ``.pth`` / ``.safetensors``), or
            ``None`` for ``vocab_size`` random unit vectors from ``seed``.
        codebook_key: entry of a dict-valued codebook file.
        vocab_size: V when the codebook is generated (FaRL's dVAE: 8192); checked against a file.
        seed: seed of the generated codebook.
        **kwargs: :class:`FrozenTeacherTarget` arguments (``checkpoint``, ``layer``,
            ``feature_norm``, statistics ...).

    ``forward(images)`` gives int64 ids (B, N) in [0, V): ``argmax_v cos(f_n, c_v)``;
    ``num_outputs`` = V; ``token_losses(logits (M, V), ids (M,))`` is the per-token
    cross-entropy (M,) in float32.
    """

    discrete = True

    def __init__(self, teacher: dict, codebook: Optional[str] = None,
                 codebook_key: Optional[str] = None, vocab_size: Optional[int] = 8192,
                 seed: int = 0, **kwargs) -> None:
        super().__init__(teacher, **kwargs)
        dims = self.feature_dims
        if codebook is not None:
            table = load_codebook(codebook, codebook_key)
            if table.shape[1] != dims:
                raise ValueError(f'codebook {codebook} has {table.shape[1]}-d entries but the '
                                 f'teacher gives {dims}-d features (layer {self.layer})')
            if vocab_size is not None and table.shape[0] != vocab_size:
                raise ValueError(f'codebook {codebook} has {table.shape[0]} entries, '
                                 f'vocab_size={vocab_size}; set vocab_size=None or fix it')
            norms = table.norm(dim=1)
            if not torch.isfinite(table).all() or (norms == 0).any():
                raise ValueError(f'codebook {codebook} has zero or non-finite entries')
        else:
            if not vocab_size or vocab_size < 2:
                raise ValueError(f'a generated codebook needs vocab_size >= 2, got {vocab_size}')
            generator = torch.Generator().manual_seed(int(seed))
            table = torch.randn(vocab_size, dims, generator=generator)
        self.register_buffer('codebook', F.normalize(table, dim=1))

    @property
    def num_outputs(self) -> int:
        return self.codebook.shape[0]

    @torch.no_grad()
    def assign(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest codebook entry (highest cosine) of features (..., D_t) -> int64 ids (...)."""
        flat = F.normalize(features.float().reshape(-1, features.shape[-1]), dim=1)
        codebook = self.codebook.float()
        ids = torch.cat([(chunk @ codebook.t()).argmax(dim=1)
                         for chunk in flat.split(_CHUNK_TOKENS)]) if flat.shape[0] else \
            flat.new_zeros(0, dtype=torch.long)
        return ids.reshape(features.shape[:-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Target ids int64 (B, N) of normalised images (B, 3, H, W); no gradient."""
        return self.assign(self.teacher_tokens(images))

    def token_losses(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-token cross-entropy (M,) of logits (M, V) against ids (M,), in float32."""
        if pred.dim() != 2 or pred.shape[1] != self.num_outputs or \
                targets.shape != pred.shape[:1]:
            raise ValueError(f'expected logits (M, {self.num_outputs}) and ids (M,), got '
                             f'{tuple(pred.shape)} and {tuple(targets.shape)}')
        return F.cross_entropy(pred.float(), targets.long(), reduction='none')
