"""``MoCoV3Loss``: MoCo v3's InfoNCE between online queries and momentum keys, as MCF uses it.

MCF (shared/docs/pretrain.md §3.1, step 4): queries ``q`` (B, C) from the online branch, keys ``k``
(B, C) from the momentum branch, both L2-normalised; keys are all-gathered across ranks without
gradient; the logits ``q̂ · k̂ᵀ / T`` of each rank are (B, world * B) and the positive of local
sample i is global column ``i + B * rank``. The loss is ``CE(logits, labels) * 2T`` with a fixed
``T`` (MCF: 0.2) and is one-directional: MCF does not symmetrise it over the two views.

New code, not :class:`ClipContrastiveLoss`: that loss is symmetric over two learned towers with a
learned temperature and gathers with gradient; this one has neither.
"""
from __future__ import annotations

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from mmengine import dist
from torch import nn

from faceanalysis.registry import MODELS

__all__ = ['MoCoV3Loss', 'gather_keys_without_grad']


def gather_keys_without_grad(keys: torch.Tensor) -> torch.Tensor:
    """Concatenate ``keys`` (B, C) of every rank along dim 0, rank order, without gradient.

    Every rank must hold the same batch size (use ``drop_last=True``); a mismatch raises instead of
    silently pairing queries with the wrong keys. Without an initialised process group this returns
    ``keys`` detached.
    """
    keys = keys.detach()
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return keys
    sizes = dist.all_gather(torch.tensor([keys.shape[0]], device=keys.device))
    if any(int(size) != keys.shape[0] for size in sizes):
        raise ValueError(f'MoCoV3Loss: per-rank batch sizes differ ({[int(s) for s in sizes]}); '
                         'the positive-key labels arange(B) + B * rank need equal batches on '
                         'every rank (set drop_last=True in the train dataloader)')
    return torch.cat(dist.all_gather(keys), dim=0)


@MODELS.register_module()
class MoCoV3Loss(nn.Module):
    """``CE(q̂ · all_gather(k̂)ᵀ / T, arange(B) + B * rank) * 2T``.

    Args:
        temperature: the fixed temperature T (MCF's ``--moco_t``, 0.2).
        gather_keys: all-gather the keys across ranks (MoCo v3, MCF). ``False`` contrasts with the
            local keys only (labels ``arange(B)``).

    Inputs are cast to float32 before normalisation, so bf16 autocast features are fine.
    """

    def __init__(self, temperature: float = 0.2, gather_keys: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'MoCoV3Loss temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)
        self.gather_keys = gather_keys

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Args: queries (B, C) with gradient; keys (B, C), treated as constants.

        Returns:
            A float32 scalar.
        """
        if queries.dim() != 2 or queries.shape != keys.shape:
            raise ValueError(f'MoCoV3Loss expects queries and keys of the same (B, C) shape, got '
                             f'{tuple(queries.shape)} and {tuple(keys.shape)}')
        queries = F.normalize(queries.float(), dim=1)
        keys = F.normalize(keys.detach().float(), dim=1)
        batch = queries.shape[0]
        offset = 0
        if self.gather_keys:
            keys = gather_keys_without_grad(keys)
            offset = batch * dist.get_rank()
        logits = queries @ keys.t() / self.temperature
        labels = torch.arange(batch, device=queries.device) + offset
        return F.cross_entropy(logits, labels) * (2 * self.temperature)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}, gather_keys={self.gather_keys}'
