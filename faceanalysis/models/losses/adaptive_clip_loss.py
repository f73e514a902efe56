"""ALIP's consistency gates and its gate-weighted contrastive loss (pretrain.md §6.1).

ALIP trains on an image ``v``, its raw text ``t`` and a synthetic caption ``c`` (one shared text
encoder). Per sample of the GLOBAL batch (length G, features all-gathered over ranks) it
measures three cosine similarities ``s_tc = <t, c>``, ``s_it = <v, t>``, ``s_ic = <v, c>`` and
tracks each one's batch mean with a scalar EMA ``m`` (initial 1.0, momentum 0.99). Then, with
``gamma = 2``:

* LCG (language consistency gate), sample weight ``W_s = min(1, exp(gamma (s_tc - m_tc)))``:
  samples whose raw text and caption agree less than usual are down-weighted.
* DCG (description consistency gate), pair weights, only where the LCG fires
  (``exp(gamma (s_tc - m_tc)) < 1``): ``W_t = exp(gamma (s_it - m_it))`` for the raw-text pair
  and ``W_c = exp(gamma (s_ic - m_ic))`` for the caption pair; elsewhere 1. They are NOT clipped
  at 1, so an image-text pair that agrees better than average is up-weighted.
* Loss: ``l_i = (CE(s V T^T)_i + CE(s T V^T)_i) / 2`` per row of the G x G similarity matrix,
  ``loss_raw = mean_i(W_s,i W_t,i l_i)``, ``loss_caption = mean_i(W_s,i W_c,i l^cap_i)``;
  ALIP optimises their sum.

Order within an iteration: the EMAs are updated with this batch's means FIRST, and the weights
use the UPDATED values (ALIP's ``train.py`` at ``deepglint/ALIP@8657eef`` computes
``momentum = 0.01 * mean + 0.99 * momentum`` and then ``exp(s - momentum) ** 2``;
pretrain.md §6.1 only says the EMAs "update every iteration"). So on the very first step the
weights see ``m = 0.99 + 0.01 * mean(s)``, not 1. :meth:`ConsistencyGates.forward` encodes this
order; :meth:`~ConsistencyGates.update` and :meth:`~ConsistencyGates.weights` are its halves.

Why new code: ALIP's gates live inline in its training script (plain Python floats that are lost
on resume) and its loss is an open_clip ``ClipLoss`` copy with extra arguments. Here the EMAs are
persistent buffers (saved in and resumed from MMEngine checkpoints), all gate arithmetic runs in
float32 under ``no_grad`` (ALIP's runs in the autocast dtype of the features), and the
distributed gather is the shared :func:`~faceanalysis.models.losses.clip_loss.gather_features`.
"""
from __future__ import annotations

from typing import Dict, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from faceanalysis.registry import MODELS
from .clip_loss import gather_features

__all__ = ['ConsistencyGates', 'GateWeights', 'AdaptiveClipLoss', 'pair_cosine',
           'per_sample_clip_losses']


def pair_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of L2-normalised (G, E) features -> (G,) float32 cosines.

    Detached and computed in float32 whatever the features' (autocast) dtype.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f'pair_cosine needs two (G, E) tensors of one shape, got '
                         f'{tuple(a.shape)} and {tuple(b.shape)}')
    return (a.detach().float() * b.detach().float()).sum(dim=-1)


class GateWeights(NamedTuple):
    """ALIP's per-sample weights over the global batch; (G,) float32 tensors without grad.

    Attributes:
        sample: LCG weight ``W_s`` in (0, 1].
        raw: DCG weight ``W_t`` of the (image, raw text) pair; 1 where the DCG is inactive.
        caption: DCG weight ``W_c`` of the (image, caption) pair; 1 where inactive.
        dcg_active: bool mask, ``exp(gamma (s_tc - m_tc)) < 1`` (the LCG fired).
    """
    sample: torch.Tensor
    raw: torch.Tensor
    caption: torch.Tensor
    dcg_active: torch.Tensor


@MODELS.register_module()
class ConsistencyGates(nn.Module):
    """ALIP's LCG / DCG: three similarity EMAs and the per-sample weights derived from them.

    Args:
        momentum: weight of the OLD value in ``m <- momentum * m + (1 - momentum) * mean(s)``
            (ALIP: 0.99; note MMEngine's ``ExponentialMovingAverage`` uses the opposite
            convention).
        gamma: sharpness ``gamma`` of ``exp(gamma * (s - m))`` (ALIP: 2, written there as
            ``exp(s - m) ** 2``).
        init_value: initial value of the three EMAs (ALIP: 1.0, the largest cosine, so early
            weights are small).

    Buffers (persistent, float32 scalars, so they are saved in and resumed from checkpoints):
    ``m_tc`` (raw text vs caption), ``m_it`` (image vs raw text), ``m_ic`` (image vs caption).

    All inputs ``s_tc, s_it, s_ic`` are (G,) cosine similarities of the globally gathered batch
    (every rank holds the same G values, so every rank's EMAs stay identical without a
    broadcast). See the module docstring for the order of update and weighting.
    """

    def __init__(self, momentum: float = 0.99, gamma: float = 2.0,
                 init_value: float = 1.0) -> None:
        super().__init__()
        if not 0. <= momentum < 1.:
            raise ValueError(f'ConsistencyGates: momentum must be in [0, 1), got {momentum}')
        if gamma <= 0:
            raise ValueError(f'ConsistencyGates: gamma must be > 0, got {gamma}')
        self.momentum = float(momentum)
        self.gamma = float(gamma)
        self.init_value = float(init_value)
        for name in ('m_tc', 'm_it', 'm_ic'):
            self.register_buffer(name, torch.tensor(self.init_value, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f'momentum={self.momentum}, gamma={self.gamma}, init_value={self.init_value}'

    @staticmethod
    def _check(s_tc: torch.Tensor, s_it: torch.Tensor, s_ic: torch.Tensor) -> None:
        if not (s_tc.dim() == 1 and s_tc.shape == s_it.shape == s_ic.shape and s_tc.numel()):
            raise ValueError('ConsistencyGates: s_tc, s_it and s_ic must be non-empty (G,) '
                             f'vectors of one length, got {tuple(s_tc.shape)}, '
                             f'{tuple(s_it.shape)} and {tuple(s_ic.shape)}')

    @torch.no_grad()
    def update(self, s_tc: torch.Tensor, s_it: torch.Tensor, s_ic: torch.Tensor) -> None:
        """One EMA step of each buffer towards this batch's mean similarity (float32)."""
        self._check(s_tc, s_it, s_ic)
        for buffer, similarities in ((self.m_tc, s_tc), (self.m_it, s_it), (self.m_ic, s_ic)):
            batch_mean = similarities.detach().float().mean()
            buffer.mul_(self.momentum).add_(batch_mean.to(buffer.device),
                                            alpha=1. - self.momentum)

    @torch.no_grad()
    def weights(self, s_tc: torch.Tensor, s_it: torch.Tensor,
                s_ic: torch.Tensor) -> GateWeights:
        """LCG / DCG weights from the CURRENT EMA values (no update)."""
        self._check(s_tc, s_it, s_ic)
        s_tc, s_it, s_ic = (s.detach().float() for s in (s_tc, s_it, s_ic))
        lcg = torch.exp(self.gamma * (s_tc - self.m_tc))
        dcg_active = lcg < 1
        ones = torch.ones_like(lcg)
        return GateWeights(
            sample=torch.where(dcg_active, lcg, ones),
            raw=torch.where(dcg_active, torch.exp(self.gamma * (s_it - self.m_it)), ones),
            caption=torch.where(dcg_active, torch.exp(self.gamma * (s_ic - self.m_ic)), ones),
            dcg_active=dcg_active)

    @torch.no_grad()
    def forward(self, s_tc: torch.Tensor, s_it: torch.Tensor, s_ic: torch.Tensor,
                update: bool = True) -> GateWeights:
        """ALIP's per-iteration gate step: update the EMAs (if ``update``), then weigh.

        ``update=False`` (evaluation, or a repeated pass of the same optimizer step) weighs
        with the EMAs as they are.
        """
        if update:
            self.update(s_tc, s_it, s_ic)
        return self.weights(s_tc, s_it, s_ic)

    @torch.no_grad()
    def log_vars(self, weights: GateWeights, s_tc: torch.Tensor, s_it: torch.Tensor,
                 s_ic: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Scalars to log (no name contains 'loss', so MMEngine logs but does not sum them).

        ``gate_m_*``: the EMAs; ``gate_s_*``: this batch's mean similarities; ``gate_ws_mean``,
        ``gate_wt_mean``, ``gate_wc_mean``: mean weights; ``gate_dcg_fraction``: the fraction
        of samples where the DCG is active.
        """
        return dict(
            gate_m_tc=self.m_tc.detach().clone(), gate_m_it=self.m_it.detach().clone(),
            gate_m_ic=self.m_ic.detach().clone(),
            gate_s_tc=s_tc.detach().float().mean(), gate_s_it=s_it.detach().float().mean(),
            gate_s_ic=s_ic.detach().float().mean(),
            gate_ws_mean=weights.sample.mean(), gate_wt_mean=weights.raw.mean(),
            gate_wc_mean=weights.caption.mean(),
            gate_dcg_fraction=weights.dcg_active.float().mean())


def per_sample_clip_losses(image_features: torch.Tensor, text_features: torch.Tensor,
                           logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP cross-entropy per row of the full (G, G) matrix.

    Args:
        image_features: (G, E), L2-normalised; row i is the positive of text row i.
        text_features: (G, E), L2-normalised.
        logit_scale: the multiplier ``exp(log_scale)`` (0-d tensor).

    Returns:
        (G,) float32: ``(CE(image i -> texts) + CE(text i -> images)) / 2``.
    """
    if image_features.shape != text_features.shape or image_features.dim() != 2:
        raise ValueError(f'image features {tuple(image_features.shape)} and text features '
                         f'{tuple(text_features.shape)} must have the same (G, E) shape')
    # float32 softmax: bf16 logits lose the last digits of a several-thousand-way softmax
    logits_per_image = (logit_scale * image_features @ text_features.t()).float()
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    loss_image = F.cross_entropy(logits_per_image, labels, reduction='none')
    loss_text = F.cross_entropy(logits_per_image.t(), labels, reduction='none')
    return (loss_image + loss_text) / 2


@MODELS.register_module()
class AdaptiveClipLoss(nn.Module):
    """ALIP's gate-weighted symmetric InfoNCE for the raw-text and the caption pairs.

    Args:
        gather_with_grad: differentiate through the all-gather (exact gradient). ALIP uses
            ``False``: every rank builds the G x G matrix from gathered copies, and only its own
            slice carries gradient (correct direction, scaled by 1/world after DDP averaging,
            which Adam ignores; pretrain.md §7.1).
        loss_weight: multiplier of both returned terms.

    There is no ``local_loss`` mode: the weights are G-vectors, one per row of the global
    matrix, and every rank computes the same full loss (ALIP's ``local_loss=False``).

    ``forward(image, text, text_aux, logit_scale, weights)`` takes this rank's (B, E)
    L2-normalised features and global :class:`GateWeights` (G = B * world) and returns
    ``dict(loss_raw=..., loss_caption=...)``; :meth:`global_losses` does the same on features
    already gathered with :meth:`gather`.
    """

    def __init__(self, gather_with_grad: bool = False, loss_weight: float = 1.) -> None:
        super().__init__()
        self.gather_with_grad = gather_with_grad
        self.loss_weight = loss_weight

    def gather(self, features: torch.Tensor) -> torch.Tensor:
        """(B, E) of this rank -> (G, E), rank-major; this rank's slice keeps its gradient."""
        return gather_features(features, with_grad=self.gather_with_grad)

    def weighted_loss(self, image_features: torch.Tensor, text_features: torch.Tensor,
                      logit_scale: torch.Tensor, sample_weight: torch.Tensor,
                      pair_weight: torch.Tensor) -> torch.Tensor:
        """``mean_i(sample_weight_i * pair_weight_i * l_i)`` over gathered (G, E) features."""
        per_sample = per_sample_clip_losses(image_features, text_features, logit_scale)
        for name, weight in (('sample_weight', sample_weight), ('pair_weight', pair_weight)):
            if weight.shape != per_sample.shape:
                raise ValueError(f'AdaptiveClipLoss: {name} has shape {tuple(weight.shape)}, '
                                 f'expected ({per_sample.shape[0]},) (one per global sample)')
        weight = (sample_weight.float() * pair_weight.float()).detach()
        return self.loss_weight * (weight * per_sample).mean()

    def global_losses(self, all_image: torch.Tensor, all_text: torch.Tensor,
                      all_text_aux: torch.Tensor, logit_scale: torch.Tensor,
                      weights: GateWeights) -> Dict[str, torch.Tensor]:
        """``loss_raw`` and ``loss_caption`` over gathered (G, E) features."""
        return dict(
            loss_raw=self.weighted_loss(all_image, all_text, logit_scale, weights.sample,
                                        weights.raw),
            loss_caption=self.weighted_loss(all_image, all_text_aux, logit_scale,
                                            weights.sample, weights.caption))

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                text_aux_features: torch.Tensor, logit_scale: torch.Tensor,
                weights: GateWeights) -> Dict[str, torch.Tensor]:
        return self.global_losses(self.gather(image_features), self.gather(text_features),
                                  self.gather(text_aux_features), logit_scale, weights)
