"""Symmetric InfoNCE of CLIP, exact across ranks (FaRL, FLIP, FLIP-80M, ALIP).

Why not open_clip's ``ClipLoss``: it is not an MMEngine module, caches labels per device and
mixes Horovod paths into the gather; here the same mathematics is a registered loss whose
distributed modes are validated at construction (pretrain.md §7.1):

* ``local_loss=True, gather_with_grad=True`` (default): each rank scores its B rows against the
  G = B * world gathered columns; the all-gather carries gradient, so every term in which a
  local feature is a negative for another rank's row reaches it. Exact global gradient, O(B*G).
* ``local_loss=False, gather_with_grad=False``: every rank builds the full G x G matrix from
  gathered features whose local slice keeps its gradient (ALIP, TencentPretrain). Correct
  direction, DDP's averaging scales it by 1/world, which Adam ignores. O(G^2).
* ``local_loss=False, gather_with_grad=True``: exact, O(G^2).
* ``local_loss=True, gather_with_grad=False`` is rejected: it silently drops the gradient of
  local features used as other ranks' negatives (a biased gradient).

Shapes: image and text features (B, E), L2-normalised; ``logit_scale`` is the multiplier
``exp(log_scale)`` (a 0-d tensor), not its logarithm.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from torch import nn

from faceanalysis.registry import MODELS

__all__ = ['ClipContrastiveLoss', 'gather_features']


def gather_features(features: torch.Tensor, with_grad: bool) -> torch.Tensor:
    """All-gather (B, E) features of every rank into (world * B, E), rank-major.

    Args:
        features: this rank's features; every rank must pass the same B.
        with_grad: differentiate through the gather (``torch.distributed.nn``; its backward
            sums every rank's gradient for this rank's slice). Without it the gathered copies
            are constants except this rank's own slice, which is the input tensor itself.
    """
    rank, world = get_dist_info()
    if world == 1:
        return features
    if with_grad:
        # Functional collective with autograd (torch >= 2.3); its backward is a
        # reduce-scatter (sum) of every rank's gradient into this rank's slice.
        from torch.distributed._functional_collectives import all_gather_tensor_autograd
        return all_gather_tensor_autograd(features.contiguous(), gather_dim=0,
                                          group=dist.group.WORLD)
    gathered = [torch.empty_like(features) for _ in range(world)]
    dist.all_gather(gathered, features.detach().contiguous())
    gathered[rank] = features
    return torch.cat(gathered, dim=0)


@MODELS.register_module()
class ClipContrastiveLoss(nn.Module):
    """CLIP's symmetric cross-entropy over image-text similarities.

    Args:
        local_loss: score only this rank's rows against all gathered columns.
        gather_with_grad: all-gather with gradient (see the module docstring for the valid
            combinations).
        label_smoothing: passed to ``F.cross_entropy`` (0 in every recipe here).
        loss_weight: multiplier of the returned loss.

    ``forward(image_features, text_features, logit_scale)`` returns the mean over rows of
    ``(CE(image -> text) + CE(text -> image)) / 2``: on one rank with B pairs this equals
    open_clip's ``ClipLoss``; on W ranks, the mean of the ranks' losses equals it on the
    concatenated batch, and so do the DDP-averaged gradients.
    """

    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True,
                 label_smoothing: float = 0., loss_weight: float = 1.) -> None:
        super().__init__()
        if local_loss and not gather_with_grad:
            raise ValueError('local_loss=True needs gather_with_grad=True: without it the '
                             "gradient of a local feature used as another rank's negative is "
                             'dropped (biased). Use local_loss=False, gather_with_grad=False '
                             '(ALIP / TencentPretrain) or gather with gradient.')
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor,
               logit_scale: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits_per_image, logits_per_text, labels)`` as the loss uses them.

        With ``local_loss`` the logits are (B, G) and the labels ``arange(B) + B * rank``;
        otherwise (G, G) with labels ``arange(G)``.
        """
        if image_features.shape != text_features.shape:
            raise ValueError(f'image features {tuple(image_features.shape)} and text features '
                             f'{tuple(text_features.shape)} must have the same (B, E) shape')
        rank, world = get_dist_info()
        all_image = gather_features(image_features, self.gather_with_grad)
        all_text = gather_features(text_features, self.gather_with_grad)
        if self.local_loss:
            logits_per_image = logit_scale * image_features @ all_text.t()
            logits_per_text = logit_scale * text_features @ all_image.t()
            offset = image_features.shape[0] * rank
            labels = torch.arange(image_features.shape[0], device=image_features.device) + offset
        else:
            logits_per_image = logit_scale * all_image @ all_text.t()
            logits_per_text = logits_per_image.t()
            labels = torch.arange(all_image.shape[0], device=image_features.device)
        return logits_per_image, logits_per_text, labels

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        logits_per_image, logits_per_text, labels = self.logits(image_features, text_features,
                                                                 logit_scale)
        # Accumulate in float32: bf16 logits lose the last digits of a 4k-way softmax.
        loss_image = F.cross_entropy(logits_per_image.float(), labels,
                                     label_smoothing=self.label_smoothing)
        loss_text = F.cross_entropy(logits_per_text.float(), labels,
                                    label_smoothing=self.label_smoothing)
        return self.loss_weight * (loss_image + loss_text) / 2
