"""timm / MAE ``VisionTransformer`` layout (MCF) -> internal OpenAI CLIP layout (image tower only).

Key mapping (shared/docs/pretrain.md §3.5 and §8.2), D the width::

    patch_embed.proj.{weight [D,3,p,p], bias [D]}  -> visual.conv1.{weight, bias}
    cls_token [1, 1, D]                            -> visual.class_embedding [D]
    pos_embed [1, 1 + N, D]                        -> visual.positional_embedding [1 + N, D]
    norm_pre.*  (timm CLIP-style ViTs only)        -> visual.ln_pre.*
    blocks.{i}.norm1 / norm2                       -> visual.transformer.resblocks.{i}.ln_1 / ln_2
    blocks.{i}.attn.qkv.{weight [3D, D], bias}     -> ...attn.in_proj_{weight, bias}
                                                      (timm's rows are already q | k | v)
    blocks.{i}.attn.proj                           -> ...attn.out_proj
    blocks.{i}.mlp.fc1 / fc2                       -> ...mlp.c_fc / mlp.c_proj
    norm.*                                         -> visual.ln_post.*

Ignored: everything that is not the encoder. MAE's decoder (``decoder_*`` and its
``mask_token [1, 1, D_dec]``), MCF's projection head and predictor (``fc.*``, ``predictor.*``), the
frozen MoCo-v3 teacher (``perceptual_loss.*``), classifier heads (``head.*``, ``fc_norm.*``) and a
momentum encoder left next to the online one (``target_encoder.*``, ``momentum_encoder.*``).
"""
from __future__ import annotations

import math
import re
from typing import Dict, Mapping

import torch

from faceanalysis.registry import CHECKPOINT_CONVERTERS

__all__ = ['convert_mae_timm', 'MAE_TIMM_IGNORED_PREFIXES']

MAE_TIMM_IGNORED_PREFIXES = ('decoder_', 'mask_token', 'predictor.', 'fc.', 'perceptual_loss.',
                             'head.', 'head_drop.', 'fc_norm.', 'target_encoder.',
                             'momentum_encoder.')

_BLOCK = re.compile(r'^blocks\.(\d+)\.(.+)$')

_BLOCK_PARTS = {
    'norm1.': 'ln_1.',
    'norm2.': 'ln_2.',
    'attn.qkv.weight': 'attn.in_proj_weight',
    'attn.qkv.bias': 'attn.in_proj_bias',
    'attn.proj.': 'attn.out_proj.',
    'mlp.fc1.': 'mlp.c_fc.',
    'mlp.fc2.': 'mlp.c_proj.',
}

_TOP_PREFIXES = {
    'patch_embed.proj.': 'visual.conv1.',
    'norm_pre.': 'visual.ln_pre.',
    'norm.': 'visual.ln_post.',
}


def _position_table(pos_embed: torch.Tensor, has_cls: bool) -> torch.Tensor:
    """``[1, 1 + N, D]`` -> ``[1 + N, D]``.

    timm's ``no_embed_class`` variant stores only the N grid rows (the class token gets no
    position); a zero CLS row is the exact equivalent in our ``1 + N`` table.
    """
    table = pos_embed.reshape(-1, pos_embed.shape[-1])
    rows = table.shape[0]
    if has_cls and math.isqrt(rows)**2 == rows:
        table = torch.cat([table.new_zeros(1, table.shape[1]), table], dim=0)
    return table


@CHECKPOINT_CONVERTERS.register_module('mae_timm')
def convert_mae_timm(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a timm / MAE / MCF encoder state dict to ``visual.*`` keys of the internal layout.

    A ``qkv`` without bias (timm ``qkv_bias=False``) gets a zero ``in_proj_bias``, which computes
    the same thing, so the result always loads into our biased attention.

    Raises:
        KeyError: an encoder key with no internal equivalent (layer scale, register tokens, q/k
            norms ...): dropping it would silently change the model.
    """
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        if key.startswith(MAE_TIMM_IGNORED_PREFIXES):
            continue
        if key == 'cls_token':
            out['visual.class_embedding'] = value.reshape(-1)
            continue
        if key == 'pos_embed':
            out['visual.positional_embedding'] = _position_table(value,
                                                                 'cls_token' in state_dict)
            continue
        prefix = next((p for p in _TOP_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            out[_TOP_PREFIXES[prefix] + key[len(prefix):]] = value
            continue
        match = _BLOCK.match(key)
        part = None
        if match is not None:
            index, rest = match.groups()
            part = next((p for p in _BLOCK_PARTS if rest.startswith(p)), None)
        if part is None:
            unknown.append(key)
            continue
        new_rest = _BLOCK_PARTS[part] + rest[len(part):]
        out[f'visual.transformer.resblocks.{index}.{new_rest}'] = value
    if unknown:
        raise KeyError(f'timm/MAE checkpoint has encoder keys the mae_timm converter does not '
                       f'map: {sorted(unknown)[:10]} ({len(unknown)} in all)')
    for key in list(out):
        if key.endswith('attn.in_proj_weight'):
            bias_key = key[:-len('weight')] + 'bias'
            if bias_key not in out:
                out[bias_key] = out[key].new_zeros(out[key].shape[0])
    return out
