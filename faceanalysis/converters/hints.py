"""Architecture facts of a converted checkpoint, for building the matching model.

Shapes give sizes (width, depth, patch size, grid, MLP width, embedding size, vocabulary). What
weights cannot tell (activation, LayerNorm epsilon, head count) comes from a Hugging Face
``config.json`` when there is one, otherwise from the layout's convention, and the head count
from the usual 64-wide heads. Key names follow :class:`~faceanalysis.models.FaceViT`'s arguments
(``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels`` ...).
"""
from __future__ import annotations

import math
import re
from typing import Dict, Mapping, Optional

import torch

__all__ = ['infer_hints', 'LAYOUT_PRESETS']

#: The FaceViT preset whose switches match each layout's released model.
LAYOUT_PRESETS = {'openai_clip': 'FaRL', 'mae_timm': 'MCF', 'hf_clip': 'FLIP80M'}

#: Activation and LayerNorm epsilon conventions of each layout (pretrain.md §2.2, §3.2, §5.2).
_LAYOUT_CONVENTIONS = {
    'openai_clip': dict(act='quick_gelu', ln_eps=1e-5),
    'mae_timm': dict(act='gelu', ln_eps=1e-6),
    'hf_clip': dict(act='quick_gelu', ln_eps=1e-5),
}

#: Hugging Face's ``CLIPVisionConfig`` / ``CLIPTextConfig`` defaults, which apply to any entry a
#: ``config.json`` leaves out.
_HF_DEFAULTS = {
    'vision': dict(hidden_act='quick_gelu', layer_norm_eps=1e-5, num_attention_heads=12,
                   image_size=224, patch_size=32),
    'text': dict(hidden_act='quick_gelu', layer_norm_eps=1e-5, num_attention_heads=8),
}

#: Hugging Face activation names -> FaceViT ``act``.
_HF_ACTS = {'quick_gelu': 'quick_gelu', 'gelu': 'gelu', 'gelu_new': 'gelu_tanh',
            'gelu_fast': 'gelu_tanh', 'gelu_pytorch_tanh': 'gelu_tanh'}

#: Widths whose usual head width is not 64 (ViT-H/14: 1280 wide, 16 heads of 80).
_HEADS_BY_WIDTH = {1280: 16}


def _default_heads(width: int) -> int:
    return _HEADS_BY_WIDTH.get(width, max(1, width // 64))


def _num_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    indices = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _vision_from_shapes(sd: Mapping[str, torch.Tensor], layout: str) -> Dict:
    conv = sd['visual.conv1.weight']
    width, in_channels, patch = int(conv.shape[0]), int(conv.shape[1]), int(conv.shape[-1])
    hints: Dict = dict(embed_dims=width, in_channels=in_channels, patch_size=patch,
                       num_layers=_num_blocks(sd, 'visual.transformer.resblocks.'),
                       num_heads=_default_heads(width), num_heads_inferred=True,
                       patch_bias='visual.conv1.bias' in sd,
                       ln_pre='visual.ln_pre.weight' in sd,
                       final_norm='visual.ln_post.weight' in sd)
    fc = sd.get('visual.transformer.resblocks.0.mlp.c_fc.weight')
    if fc is not None:
        hints['feedforward_channels'] = int(fc.shape[0])
    pos = sd.get('visual.positional_embedding')
    if pos is not None:
        side = math.isqrt(int(pos.shape[0]) - 1)
        hints['pos_rows'] = int(pos.shape[0])
        if side * side == pos.shape[0] - 1:
            hints['grid_size'] = side
            hints['img_size'] = side * patch
    if 'visual.proj' in sd:
        hints['output_dim'] = int(sd['visual.proj'].shape[1])
    hints.update(_LAYOUT_CONVENTIONS[layout])
    hints['mask_token'] = 'visual.mask_token' in sd
    return hints


def _text_from_shapes(sd: Mapping[str, torch.Tensor], layout: str) -> Dict:
    vocab, width = (int(size) for size in sd['token_embedding.weight'].shape)
    hints: Dict = dict(embed_dims=width, vocab_size=vocab,
                       num_layers=_num_blocks(sd, 'transformer.resblocks.'),
                       num_heads=_default_heads(width), num_heads_inferred=True)
    if 'positional_embedding' in sd:
        hints['context_length'] = int(sd['positional_embedding'].shape[0])
    fc = sd.get('transformer.resblocks.0.mlp.c_fc.weight')
    if fc is not None:
        hints['feedforward_channels'] = int(fc.shape[0])
    if 'text_projection' in sd:
        hints['output_dim'] = int(sd['text_projection'].shape[1])
    hints.update(_LAYOUT_CONVENTIONS[layout])
    return hints


def _hf_tower_config(config: Mapping, tower: str) -> Dict:
    """One tower's settings with HF's precedence: defaults < ``*_config`` < ``*_config_dict``."""
    merged = dict(_HF_DEFAULTS[tower])
    for name in (f'{tower}_config', f'{tower}_config_dict'):
        if isinstance(config.get(name), Mapping):
            merged.update(config[name])
    return merged


def _apply_hf_config(hints: Dict, tower_config: Mapping, tower: str) -> None:
    raw_act = str(tower_config['hidden_act'])
    hints['hf_hidden_act'] = raw_act
    hints['act'] = _HF_ACTS.get(raw_act, raw_act)
    hints['ln_eps'] = float(tower_config['layer_norm_eps'])
    hints['num_heads'] = int(tower_config['num_attention_heads'])
    hints['num_heads_inferred'] = False
    if tower == 'vision':
        hints['img_size'] = int(tower_config['image_size'])
        hints['patch_size'] = int(tower_config['patch_size'])


def infer_hints(state_dict: Mapping[str, torch.Tensor], layout: str,
                hf_config: Optional[Mapping] = None) -> Dict:
    """Architecture hints of a state dict in the internal layout.

    Args:
        state_dict: converted (internal-layout) state dict.
        layout: the source layout it was converted from.
        hf_config: the Hugging Face ``config.json`` when the source had one.

    Returns:
        ``{'source_layout', 'preset', 'from_config', 'vision': {...}, 'text': {...}}``; a tower is
        absent when the checkpoint does not hold it. Values are plain Python numbers, strings and
        bools, so the dict can be saved next to tensors and read with ``weights_only=True``.
    """
    hints: Dict = dict(source_layout=layout, preset=LAYOUT_PRESETS.get(layout),
                       from_config=hf_config is not None)
    if 'visual.conv1.weight' in state_dict:
        hints['vision'] = _vision_from_shapes(state_dict, layout)
    if 'token_embedding.weight' in state_dict:
        hints['text'] = _text_from_shapes(state_dict, layout)
    if hf_config is not None:
        for tower in ('vision', 'text'):
            if tower in hints:
                _apply_hf_config(hints[tower], _hf_tower_config(hf_config, tower), tower)
        if 'projection_dim' in hf_config:
            hints['embed_dim'] = int(hf_config['projection_dim'])
    return hints
