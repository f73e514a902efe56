"""Use FaRL / FLIP-80M as a CLIP model: load a released checkpoint, classify faces zero-shot.

Example:
    >>> from faceanalysis.apis import load_face_clip
    >>> model = load_face_clip('checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')
    >>> probs = model.zero_shot('face.jpg', ['a photo of a smiling face',
    ...                                      'a photo of a sad face'])
"""
from __future__ import annotations

import os
from typing import Union

import torch

from faceanalysis.models.face_clip import FaceCLIP

__all__ = ['FaceCLIP', 'load_face_clip']


def load_face_clip(path: Union[str, os.PathLike], device: Union[str, torch.device] = 'cpu',
                   **overrides) -> FaceCLIP:
    """A :class:`FaceCLIP` with a released checkpoint's weights, in eval mode on ``device``.

    Args:
        path: FaRL ``.pth``, a Hugging Face CLIP directory / weight file (FLIP-80M), or any other
            checkpoint :func:`faceanalysis.converters.load_clip_checkpoint` reads.
        device: where the model goes.
        **overrides: see :meth:`FaceCLIP.from_pretrained` (e.g. ``act='gelu'``,
            ``text_causal=False``, ``vision_cfg=dict(img_size=448)``).
    """
    model = FaceCLIP.from_pretrained(os.fspath(path), **overrides)
    return model.to(device).eval()
