"""OpenAI CLIP layout (FaRL, open_clip): already our internal layout.

Internal layout (shared/docs/pretrain.md §8), D image width, W text width, E embedding size::

    visual.conv1.weight [D, 3, p, p] (+ visual.conv1.bias [D] when the patch embedding has one)
    visual.class_embedding [D]          visual.positional_embedding [1 + N, D] (CLS row first)
    visual.ln_pre.{weight,bias}         (CLIP family only)
    visual.transformer.resblocks.{i}.{ln_1, attn.in_proj_weight [3D, D] (q|k|v rows),
        attn.in_proj_bias [3D], attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}
    visual.ln_post.{weight,bias}        visual.proj [D, E] (x @ proj)
    token_embedding.weight [V, W]       positional_embedding [ctx, W]
    transformer.resblocks.{i}.*         ln_final.*   text_projection [W, E]   logit_scale []
"""
from __future__ import annotations

from typing import Dict, Mapping

import torch

from faceanalysis.registry import CHECKPOINT_CONVERTERS

__all__ = ['convert_openai_clip']

#: Integer entries of OpenAI's original JIT archives; OpenAI's own loader deletes them too.
_METADATA_KEYS = ('input_resolution', 'context_length', 'vocab_size')


@CHECKPOINT_CONVERTERS.register_module('openai_clip')
def convert_openai_clip(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Identity, apart from two normalisations.

    * A bare image tower (``conv1.weight``, ``class_embedding`` ... without ``visual.``, as
      ``FaceViT.state_dict()`` writes) gets the ``visual.`` prefix.
    * OpenAI's JIT metadata integers are dropped.

    Everything else is kept, including FaRL's masked-image-modelling head (``visual.mask_token``,
    ``visual.lm_transformer.*``, ``visual.ln_lm.*``, ``visual.lm_head.*``), which the backbone
    ignores and a pre-training model may use.
    """
    out = {key: value for key, value in state_dict.items() if key not in _METADATA_KEYS}
    has_visual = any(key.startswith('visual.') for key in out)
    if not has_visual and 'conv1.weight' in out and 'class_embedding' in out:
        out = {f'visual.{key}': value for key, value in out.items()}
    return out
