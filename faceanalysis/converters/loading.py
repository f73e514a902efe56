"""File -> internal layout: the entry points that models and tools call."""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, Callable, Dict, Mapping, Tuple

import torch

from faceanalysis.registry import CHECKPOINT_CONVERTERS
from .hints import infer_hints
from .io import PathLike, load_checkpoint_file, read_hf_config
from .layouts import resolve_checkpoint

__all__ = ['convert_state_dict', 'load_clip_checkpoint', 'load_visual_state_dict']


def _converter(layout: str) -> Callable[[Mapping[str, torch.Tensor]], Dict[str, torch.Tensor]]:
    converter = CHECKPOINT_CONVERTERS.get(layout)
    if converter is None:
        raise KeyError(f'no checkpoint converter registered for layout {layout!r}; registered: '
                       f'{sorted(CHECKPOINT_CONVERTERS.module_dict)}')
    return converter


def convert_state_dict(checkpoint: Any, source: str = 'checkpoint'
                       ) -> Tuple[Dict[str, torch.Tensor], str, str]:
    """Convert an in-memory checkpoint (wrapped or flat) to the internal layout.

    Returns:
        ``(state_dict, layout, prefix)``: internal-layout tensors, the detected source layout
        and the sub-model prefix that was selected (``''`` if none).
    """
    flat, layout, prefix = resolve_checkpoint(checkpoint, source)
    return _converter(layout)(flat), layout, prefix


def _saved_hints(checkpoint: Any) -> Dict:
    """Hints stored by ``tools/convert_weights.py`` (``{'meta': {'hints': ...}}``), if any."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get('meta'), Mapping):
        hints = checkpoint['meta'].get('hints')
        if isinstance(hints, Mapping):
            return dict(hints)
    return {}


def load_clip_checkpoint(path: PathLike) -> Tuple[Dict[str, torch.Tensor], str, Dict]:
    """Read any supported checkpoint and return it in the internal (OpenAI CLIP) layout.

    Args:
        path: FaRL ``.pth``, MCF / MAE ``.pth``, a Hugging Face CLIP directory or weight file,
            or a file written by ``tools/convert_weights.py``.

    Returns:
        ``(state_dict, layout, hints)``: internal-layout tensors (both towers when present), the
        source layout (``'openai_clip' | 'hf_clip' | 'mae_timm'``) and architecture hints (see
        :func:`~faceanalysis.converters.hints.infer_hints`; for a Hugging Face source the
        ``config.json`` next to the weights is read).
    """
    source = os.fspath(path)
    checkpoint = load_checkpoint_file(source)
    state_dict, layout, prefix = convert_state_dict(checkpoint, source)
    hf_config = None
    if layout == 'hf_clip':
        config = read_hf_config(source)
        # A stray config.json of some other model must not override the weights' facts.
        if config is not None and config.get('model_type', 'clip') == 'clip':
            hf_config = config
    hints = infer_hints(state_dict, layout, hf_config)
    saved = _saved_hints(checkpoint)
    if saved:
        # A converted file holds the same tensors as its source, so the source's hints (with the
        # activation / eps its config.json declared) still apply to every tower it kept.
        for tower in ('vision', 'text'):
            if tower in hints and isinstance(saved.get(tower), Mapping):
                hints[tower] = dict(saved[tower])
        for key in ('preset', 'embed_dim', 'from_config'):
            if key in saved:
                hints[key] = saved[key]
        hints['converted_from'] = saved.get('source_layout')
    if prefix:
        hints['submodel_prefix'] = prefix
    return state_dict, layout, hints


def _key_groups(keys) -> str:
    counts = Counter(key.split('.', 1)[0] + ('.*' if '.' in key else '') for key in keys)
    return ', '.join(f'{group} ({count})' for group, count in sorted(counts.items()))


def load_visual_state_dict(path: PathLike, prefix: str = 'visual.'
                           ) -> Tuple[Dict[str, torch.Tensor], str]:
    """The image tower of a checkpoint, in our layout without ``prefix``.

    This is what ``FaceViT(init_cfg=dict(type='Pretrained', checkpoint=path))`` loads.

    Returns:
        ``(state_dict, layout)``: keys such as ``conv1.weight``, ``positional_embedding``,
        ``transformer.resblocks.0.attn.in_proj_weight`` (plus any pre-training extras such as
        FaRL's ``mask_token`` / ``lm_head.*``), and the detected source layout.

    Raises:
        KeyError: the checkpoint has no key under ``prefix`` (e.g. a text-only checkpoint).
    """
    state_dict, layout, _ = load_clip_checkpoint(path)
    visual = {key[len(prefix):]: value for key, value in state_dict.items()
              if key.startswith(prefix)}
    if not visual:
        raise KeyError(
            f'{os.fspath(path)} (detected layout {layout}) has no image-tower keys under '
            f'{prefix!r} after conversion; it has {len(state_dict)} keys in the groups: '
            f'{_key_groups(state_dict)}. Is this a text-only checkpoint, or is the prefix wrong?')
    return visual, layout
