"""Hugging Face ``CLIPModel`` layout (FLIP-80M) -> internal OpenAI CLIP layout.

Key mapping (shared/docs/pretrain.md §5.5 and §8.2); ``{T}`` is ``vision_model`` -> ``visual.`` or
``text_model`` -> ``''`` (the text tower has no prefix in the OpenAI layout)::

    vision_model.embeddings.class_embedding [D]            -> visual.class_embedding
    vision_model.embeddings.patch_embedding.weight          -> visual.conv1.weight
    vision_model.embeddings.position_embedding.weight       -> visual.positional_embedding
    vision_model.pre_layrnorm.* (HF's spelling)             -> visual.ln_pre.*
    vision_model.post_layernorm.*                           -> visual.ln_post.*
    text_model.embeddings.token_embedding.weight            -> token_embedding.weight
    text_model.embeddings.position_embedding.weight         -> positional_embedding
    text_model.final_layer_norm.*                           -> ln_final.*
    {T}.encoder.layers.{i}.self_attn.{q,k,v}_proj.{weight,bias}
                                 -> {T}transformer.resblocks.{i}.attn.in_proj_{weight,bias}
                                    (rows concatenated q | k | v, nn.MultiheadAttention's order)
    {T}.encoder.layers.{i}.self_attn.out_proj.*  -> ...attn.out_proj.*
    {T}.encoder.layers.{i}.layer_norm{1,2}.*     -> ...ln_{1,2}.*
    {T}.encoder.layers.{i}.mlp.fc{1,2}.*         -> ...mlp.c_fc.* / ...mlp.c_proj.*
    visual_projection.weight [E, D]  -> visual.proj [D, E]      (transposed: HF is a Linear)
    text_projection.weight [E, W]    -> text_projection [W, E]  (transposed)
    logit_scale                      -> logit_scale
    *.position_ids                   -> dropped (index buffers, not weights)

HF's attention scales q by ``head_dim**-0.5`` inside the module, as ``nn.MultiheadAttention`` and
SDPA do, so no weight is rescaled.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Tuple

import torch

from faceanalysis.registry import CHECKPOINT_CONVERTERS

__all__ = ['convert_hf_clip']

_TOWER_PREFIX = {'vision_model': 'visual.', 'text_model': ''}

_FIXED = {
    'vision_model.embeddings.class_embedding': 'visual.class_embedding',
    'vision_model.embeddings.patch_embedding.weight': 'visual.conv1.weight',
    'vision_model.embeddings.patch_embedding.bias': 'visual.conv1.bias',
    'vision_model.embeddings.position_embedding.weight': 'visual.positional_embedding',
    'text_model.embeddings.token_embedding.weight': 'token_embedding.weight',
    'text_model.embeddings.position_embedding.weight': 'positional_embedding',
    'logit_scale': 'logit_scale',
}

_RENAMED_PREFIXES = {
    'vision_model.pre_layrnorm.': 'visual.ln_pre.',
    'vision_model.post_layernorm.': 'visual.ln_post.',
    'text_model.final_layer_norm.': 'ln_final.',
}

_TRANSPOSED = {'visual_projection.weight': 'visual.proj',
               'text_projection.weight': 'text_projection'}

_LAYER = re.compile(r'^(vision_model|text_model)\.encoder\.layers\.(\d+)\.(.+)$')

_BLOCK_PARTS = {
    'self_attn.out_proj.': 'attn.out_proj.',
    'layer_norm1.': 'ln_1.',
    'layer_norm2.': 'ln_2.',
    'mlp.fc1.': 'mlp.c_fc.',
    'mlp.fc2.': 'mlp.c_proj.',
}

_QKV = re.compile(r'^self_attn\.([qkv])_proj\.(weight|bias)$')


def _block_key(tower: str, index: str, rest: str) -> str:
    return f'{_TOWER_PREFIX[tower]}transformer.resblocks.{index}.{rest}'


@CHECKPOINT_CONVERTERS.register_module('hf_clip')
def convert_hf_clip(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a Hugging Face CLIP state dict (either tower or both) to the internal layout.

    Raises:
        KeyError: a key this mapping does not know (it would otherwise be dropped silently), or
            an incomplete q/k/v triple.
    """
    out: Dict[str, torch.Tensor] = {}
    # (output key, 'weight'|'bias') -> {'q': tensor, 'k': ..., 'v': ...}
    qkv: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state_dict.items():
        if key.endswith('position_ids'):
            continue
        if key in _FIXED:
            out[_FIXED[key]] = value
            continue
        if key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = value.t().contiguous()
            continue
        prefix = next((p for p in _RENAMED_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            out[_RENAMED_PREFIXES[prefix] + key[len(prefix):]] = value
            continue
        match = _LAYER.match(key)
        if match is None:
            unknown.append(key)
            continue
        tower, index, rest = match.groups()
        qkv_match = _QKV.match(rest)
        if qkv_match is not None:
            which, kind = qkv_match.groups()
            qkv.setdefault((_block_key(tower, index, 'attn.in_proj_'), kind), {})[which] = value
            continue
        part = next((p for p in _BLOCK_PARTS if rest.startswith(p)), None)
        if part is None:
            unknown.append(key)
            continue
        out[_block_key(tower, index, _BLOCK_PARTS[part] + rest[len(part):])] = value
    for (stem, kind), parts in sorted(qkv.items()):
        if set(parts) != {'q', 'k', 'v'}:
            raise KeyError(f'{stem}{kind}: HF checkpoint has only the {sorted(parts)} projections '
                           'of q/k/v')
        out[f'{stem}{kind}'] = torch.cat([parts['q'], parts['k'], parts['v']], dim=0)
    if unknown:
        raise KeyError(f'Hugging Face CLIP checkpoint has keys the hf_clip converter does not '
                       f'map: {sorted(unknown)[:10]} ({len(unknown)} in all)')
    return out
