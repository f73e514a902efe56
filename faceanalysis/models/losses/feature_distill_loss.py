"""``FeatureDistillLoss``: MCF's "perceptual" loss between two lists of teacher features.

MCF (shared/docs/pretrain.md §3.1, step 3) runs a frozen MoCo-v3 ViT on the reconstructed image and
on the input, takes raw block outputs (B, 1 + N, D) of a few blocks from each, L2-normalises them
and sums the per-layer mean squared errors, the input's features being the (detached) target.
The normalisation in MCF's code is ``F.normalize(feat, dim=1)``: on (B, 1 + N, D) features that is
the **token** axis, not the channel axis. ``norm_dim=1`` keeps that quirk for parity; ``-1``
normalises each token's channels, as a feature-distillation loss usually does.

New code rather than an mmpretrain / mmseg loss: none of them has this per-layer, token-axis
normalised sum, and the normalisation axis is the point of the switch.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceanalysis.registry import MODELS

__all__ = ['FeatureDistillLoss']


@MODELS.register_module()
class FeatureDistillLoss(nn.Module):
    """``loss_weight * sum_l MSE(normalize(pred_l), normalize(target_l).detach())``.

    Args:
        norm_dim: axis of the L2 normalisation. ``1`` (default) is MCF's code: the token axis of
            (B, 1 + N, D) features. ``-1`` normalises channels per token. ``None`` skips it.
        loss_weight: factor on the summed loss (MCF: 1000).
        eps: ``F.normalize``'s epsilon.

    The MSE is a mean over every element of a layer's features (``F.mse_loss`` default), computed
    in float32 whatever the input dtype (bf16 autocast features are upcast first).
    """

    def __init__(self, norm_dim: int | None = 1, loss_weight: float = 1.0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.norm_dim = norm_dim
        self.loss_weight = float(loss_weight)
        self.eps = eps

    def forward(self, preds: Sequence[torch.Tensor],
                targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sum of per-layer MSEs, weighted.

        Args:
            preds: one tensor per layer, e.g. (B, 1 + N, D), carrying the gradient.
            targets: the same number of tensors with the same shapes; detached here.

        Returns:
            A float32 scalar.
        """
        if len(preds) != len(targets) or not preds:
            raise ValueError(f'FeatureDistillLoss needs the same non-zero number of prediction '
                             f'and target layers, got {len(preds)} and {len(targets)}')
        total = preds[0].new_zeros((), dtype=torch.float32)
        for layer, (pred, target) in enumerate(zip(preds, targets)):
            if pred.shape != target.shape:
                raise ValueError(f'FeatureDistillLoss layer {layer}: prediction '
                                 f'{tuple(pred.shape)} and target {tuple(target.shape)} differ')
            pred, target = pred.float(), target.detach().float()
            if self.norm_dim is not None:
                pred = F.normalize(pred, dim=self.norm_dim, eps=self.eps)
                target = F.normalize(target, dim=self.norm_dim, eps=self.eps)
            total = total + F.mse_loss(pred, target)
        return self.loss_weight * total

    def extra_repr(self) -> str:
        return f'norm_dim={self.norm_dim}, loss_weight={self.loss_weight}'
