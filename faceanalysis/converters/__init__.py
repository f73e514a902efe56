"""Released checkpoints (FaRL, MCF, FLIP-80M) -> our internal OpenAI CLIP layout.

Pipeline: :func:`load_checkpoint_file` (safe reading) -> :func:`unwrap_checkpoint` /
:func:`detect_layout` (wrappers, prefixes, layout) -> the converter registered for the layout in
:data:`faceanalysis.registry.CHECKPOINT_CONVERTERS` -> internal layout. The internal layout is the
full OpenAI CLIP state dict (``visual.*`` image tower, text tower without prefix); FaRL files are
already in it. See shared/docs/pretrain.md §8 for the mapping table.

Example:
    >>> from faceanalysis.converters import load_clip_checkpoint, load_visual_state_dict
    >>> state_dict, layout, hints = load_clip_checkpoint('checkpoints/FLIP-base-16')
    >>> farl = 'checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth'
    >>> visual, layout = load_visual_state_dict(farl)
"""
from .export import (export_hf_clip, export_mae_timm, export_openai_clip,
                     load_pretrain_state_dict)
from .hf_clip import convert_hf_clip
from .hints import LAYOUT_PRESETS, infer_hints
from .io import UnsafeCheckpointError, load_checkpoint_file, read_hf_config
from .layouts import LAYOUTS, detect_layout, resolve_checkpoint, unwrap_checkpoint
from .loading import convert_state_dict, load_clip_checkpoint, load_visual_state_dict
from .mae_timm import convert_mae_timm
from .openai_clip import convert_openai_clip

__all__ = [
    'LAYOUTS', 'LAYOUT_PRESETS', 'UnsafeCheckpointError', 'convert_hf_clip', 'convert_mae_timm',
    'convert_openai_clip', 'convert_state_dict', 'detect_layout', 'infer_hints',
    'load_checkpoint_file', 'load_clip_checkpoint', 'load_visual_state_dict', 'read_hf_config',
    'resolve_checkpoint', 'unwrap_checkpoint', 'export_hf_clip', 'export_mae_timm',
    'export_openai_clip', 'load_pretrain_state_dict'
]
