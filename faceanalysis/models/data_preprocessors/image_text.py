"""``ImageTextDataPreprocessor``: uint8 image batches + token ids -> normalised float images.

MMEngine's ``ImgDataPreprocessor`` expects ``{'inputs', 'data_samples'}`` batches and would turn
the token tensors of an image-text sample into ``data_samples``; pre-training batches are plain
dicts of tensors (``img``, ``text``, ``text_aux``, ``mim_mask`` ...), so this preprocessor keeps
that shape: it normalises ``img`` into ``images`` and moves every tensor to the model's device,
in one place, so the data loader workers only ship compact uint8 tensors.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from faceanalysis.registry import MODELS

__all__ = ['ImageTextDataPreprocessor', 'CLIP_MEAN_255', 'CLIP_STD_255', 'IMAGENET_MEAN_255',
           'IMAGENET_STD_255']

#: CLIP's (FaRL, FLIP-80M, ALIP) and ImageNet's (FLIP, MCF) statistics in 0-255 units.
CLIP_MEAN_255 = (122.7709383, 116.7460125, 104.09373615)
CLIP_STD_255 = (68.5005327, 66.6321579, 70.32316305)
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


@MODELS.register_module()
class ImageTextDataPreprocessor(BaseDataPreprocessor):
    """Normalise ``img`` (B, 3, H, W) uint8 RGB into ``images`` float and move the batch.

    Args:
        mean: per-channel mean in 0-255 units, RGB order.
        std: per-channel std in 0-255 units, RGB order.
        image_key: batch key holding the uint8 images.
        channels_last: return ``images`` in channels-last memory format (faster convolutions
            on GPU; the ViT's patch embedding is a strided convolution).

    A batch is the default-collated dict of the data contract: ``img`` uint8 (B, 3, H, W) and
    any of ``text`` / ``text_aux`` (B, L) long, ``mim_mask`` (B, N) bool, ``key`` list of str.
    The output has ``images`` float32 (B, 3, H, W) instead of ``img``; other entries are moved
    to the device unchanged. Autocast (bf16) is applied later by the optimizer wrapper.
    """

    def __init__(self, mean: Sequence[float] = CLIP_MEAN_255,
                 std: Sequence[float] = CLIP_STD_255, image_key: str = 'img',
                 channels_last: bool = False) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.image_key = image_key
        self.channels_last = channels_last

    def forward(self, data: Any, training: bool = False) -> Dict[str, Any]:
        if not isinstance(data, dict) or self.image_key not in data:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise KeyError(f'ImageTextDataPreprocessor expects a dict batch with {self.image_key!r}'
                           f' (uint8 images), got {keys}')
        batch = self.cast_data(dict(data))
        images = batch.pop(self.image_key)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f'{self.image_key!r} must be (B, 3, H, W), got {tuple(images.shape)}')
        images = (images.float() - self.mean) / self.std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        batch['images'] = images
        return batch

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise uint8 / 0-255 float images (B, 3, H, W) outside a batch dict."""
        mean: Optional[torch.Tensor] = self.mean
        return (images.float().to(mean.device) - mean) / self.std
