"""Unwrapping, prefix stripping and layout detection of released checkpoints.

A released file is a *wrapper* (``{'state_dict': sd}`` FaRL, ``{'model': sd, 'epoch', 'args', ...}``
MAE / MCF, ``{'module': sd}`` DeepSpeed) around a flat ``{name: tensor}`` dict whose keys may carry
a *training prefix* (``module.`` from DDP, ``_orig_mod.`` from ``torch.compile``) and a *sub-model
prefix* (``online_encoder.`` / ``target_encoder.`` in MCF, ``base_encoder.`` in MoCo-v3 teachers,
``backbone.`` in downstream checkpoints). :func:`resolve_checkpoint` peels all three and names the
layout of what remains:

* ``'openai_clip'``: OpenAI CLIP names (FaRL, open_clip, and our internal layout),
  ``visual.conv1.weight``, ``visual.transformer.resblocks.{i}.attn.in_proj_weight``, ...
* ``'hf_clip'``: Hugging Face ``CLIPModel`` (FLIP-80M), ``vision_model.embeddings.*``,
  ``vision_model.encoder.layers.{i}.self_attn.q_proj.*``, ...
* ``'mae_timm'``: timm / MAE ``VisionTransformer`` (MCF), ``patch_embed.proj.weight``,
  ``blocks.{i}.attn.qkv.weight``, ``cls_token``, ``pos_embed``, ``norm.*``.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch

__all__ = ['LAYOUTS', 'WRAPPER_KEYS', 'SUBMODEL_PREFIXES', 'unwrap_checkpoint', 'match_layout',
           'resolve_checkpoint', 'detect_layout']

LAYOUTS = ('openai_clip', 'hf_clip', 'mae_timm')

#: Top-level entries that hold the state dict, looked up in this order (and repeatedly, for
#: nested wrappers such as ``{'model': {'module': sd}}``).
WRAPPER_KEYS = ('state_dict', 'model', 'module')

#: Prefixes that every key carries when a wrapped module was saved.
TRAINING_PREFIXES = ('module.', '_orig_mod.')

#: Sub-models tried in order when the whole dict has no known layout. MCF keeps an online and a
#: momentum (target) encoder; the online one is what MCF trains by gradient, so it is preferred.
SUBMODEL_PREFIXES = ('online_encoder.', 'target_encoder.', 'base_encoder.', 'momentum_encoder.',
                     'backbone.')


def unwrap_checkpoint(checkpoint: Any, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` inside a checkpoint, with training prefixes removed.

    Wrappers (:data:`WRAPPER_KEYS`) are entered while present; non-tensor entries of the state
    dict (rare metadata) are dropped; ``module.`` / ``_orig_mod.`` are stripped when every key has
    them. Sub-model prefixes are left alone (see :func:`resolve_checkpoint`).
    """
    node = checkpoint
    while isinstance(node, Mapping):
        inner = next((node[key] for key in WRAPPER_KEYS if isinstance(node.get(key), Mapping)),
                     None)
        if inner is None:
            break
        node = inner
    if not isinstance(node, Mapping):
        raise ValueError(f'{source}: expected a state dict (a mapping of names to tensors), got '
                         f'{type(node).__name__}')
    tensors = {str(key): value for key, value in node.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ValueError(f'{source}: no tensors found; top-level entries are '
                         f'{sorted(map(str, node))[:20]}')
    return _strip_training_prefixes(tensors)


def _strip_training_prefixes(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in TRAINING_PREFIXES:
            if all(key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
                changed = True
    return state_dict


def match_layout(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The layout of a flat, prefix-free state dict, or None. Decided by signature keys."""
    keys = state_dict.keys()
    if any(key.startswith(('vision_model.embeddings.', 'text_model.embeddings.')) for key in keys):
        return 'hf_clip'
    if 'patch_embed.proj.weight' in keys:
        return 'mae_timm'
    if 'visual.conv1.weight' in keys or 'visual.class_embedding' in keys:
        return 'openai_clip'
    # A bare image tower in our layout (e.g. ``FaceViT.state_dict()``).
    if 'conv1.weight' in keys and 'class_embedding' in keys:
        return 'openai_clip'
    # A text tower alone (no image keys): still OpenAI names.
    if 'token_embedding.weight' in keys and any(
            key.startswith('transformer.resblocks.') for key in keys):
        return 'openai_clip'
    return None


def resolve_checkpoint(checkpoint: Any, source: str = 'checkpoint'
                       ) -> Tuple[Dict[str, torch.Tensor], str, str]:
    """Unwrap a checkpoint, pick the sub-model and detect its layout.

    Returns:
        ``(state_dict, layout, prefix)``: the flat dict in the source layout, one of
        :data:`LAYOUTS`, and the sub-model prefix that was removed (``''`` if none).

    Raises:
        ValueError: no known layout, naming ``source`` and showing a few keys.
    """
    state_dict = unwrap_checkpoint(checkpoint, source)
    layout = match_layout(state_dict)
    if layout is not None:
        return state_dict, layout, ''
    for prefix in SUBMODEL_PREFIXES:
        sub = {key[len(prefix):]: value for key, value in state_dict.items()
               if key.startswith(prefix)}
        if not sub:
            continue
        sub = _strip_training_prefixes(sub)
        layout = match_layout(sub)
        if layout is not None:
            return sub, layout, prefix
    keys = sorted(state_dict)
    raise ValueError(
        f'{source}: unknown checkpoint layout ({len(keys)} tensors; first keys {keys[:8]}). '
        'Supported: OpenAI CLIP / FaRL (visual.conv1.weight, visual.transformer.resblocks.*), '
        'Hugging Face CLIPModel / FLIP-80M (vision_model.embeddings.*) and timm / MAE / MCF '
        f'(patch_embed.proj.weight, blocks.*), optionally under {list(WRAPPER_KEYS)} wrappers and '
        f'{list(TRAINING_PREFIXES) + list(SUBMODEL_PREFIXES)} prefixes.')


def detect_layout(state_dict: Any, source: str = 'checkpoint') -> str:
    """Layout name (``'openai_clip' | 'hf_clip' | 'mae_timm'``) of a (wrapped) state dict.

    Args:
        state_dict: what :func:`~faceanalysis.converters.load_checkpoint_file` returned: a flat
            state dict or a wrapper around one.
        source: file name used in error messages.
    """
    return resolve_checkpoint(state_dict, source)[1]
