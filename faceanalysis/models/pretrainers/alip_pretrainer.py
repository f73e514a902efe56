"""``ALIPPretrainer``: ALIP's bi-path (raw text + synthetic caption) gated contrastive training.

ALIP ("Adaptive Language-Image Pre-training with Synthetic Caption", pretrain.md §6) is CLIP with
a second positive text per image, an offline synthetic caption (batch key ``text_aux``), encoded
by the SAME text encoder as the raw text (``text``). Two InfoNCE losses (image-raw text,
image-caption) over the global batch are weighted per sample by the consistency gates
(:class:`~faceanalysis.models.losses.adaptive_clip_loss.ConsistencyGates`, formulas there) and
summed: ``loss = loss_raw + loss_caption``.

What this class adds to :class:`CLIPPretrainer`:

* :meth:`extract_features` returns ``image``, ``text`` and ``text_aux`` (all L2-normalised); the
  two text fields go through the text tower in one call (concatenated along the batch).
* :meth:`contrastive_losses` all-gathers the three feature sets once, computes the cosine
  similarities in float32 without gradient, steps the gates and returns ``loss_raw``,
  ``loss_caption`` and the gate statistics (``gate_m_tc`` ..., names without 'loss': logged,
  not summed).
* Gate EMAs step exactly once per optimizer step, and only in training:

  - ``accumulation_steps`` = 1: every training ``forward(mode='loss')`` is one step.
  - ``accumulation_steps`` = k > 1 (the lead's feature-cache accumulation): the loss is
    evaluated k times per step on the same merged global features (each pass back-propagates
    through one micro-batch). The EMAs step on the first pass; its weights are kept and reused
    by the other k - 1 passes, so every pass uses identical weights and the summed gradient is
    that of the one large weighted batch.
  - MMEngine's naive ``accumulative_counts`` (optimizer wrapper) calls ``train_step`` per
    micro-batch, so the EMAs step per micro-batch, which is what ALIP's own ``--gradient-acc``
    does.
  - Evaluation (``model.eval()``): the weights use the EMAs as they are; nothing updates.

* Defaults for ALIP: ``logit_scale_clamp='param'`` (the parameter is clamped in place to
  [0, ln 100] before every training forward, i.e. after every optimizer step), the loss
  :class:`~faceanalysis.models.losses.adaptive_clip_loss.AdaptiveClipLoss`
  (``gather_with_grad=False``, full G x G, ALIP's setting), erf GELU (``act='gelu'``) in both
  towers unless the config says otherwise, and ``clip=None`` builds ALIP's ViT-B/32.

State dict: ``clip.*`` (OpenAI/open_clip CLIP layout, as ALIP's release after stripping
``module.``) plus the persistent gate buffers ``gates.m_tc``, ``gates.m_it``, ``gates.m_ic``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from mmengine.optim import OptimWrapper

from faceanalysis.registry import MODELS
from ..losses.adaptive_clip_loss import ConsistencyGates  # noqa: F401  (registers it)
from ..losses.adaptive_clip_loss import AdaptiveClipLoss, pair_cosine
from .clip_pretrainer import CLIPPretrainer

__all__ = ['ALIPPretrainer', 'ALIP_B32_CLIP']

#: ALIP's ViT-B/32 (open_clip ``ViT-B-32.json`` with ``quick_gelu=False``): vision 768 wide,
#: 12 layers, patch 32 at 224 px; text 512 wide, 8 heads, 12 layers, context 77, CLIP BPE.
ALIP_B32_CLIP = dict(
    type='FaceCLIP', embed_dim=512,
    vision_cfg=dict(type='FaceViT', arch='base', img_size=224, patch_size=32, act='gelu',
                    ln_eps=1e-5, ln_pre=True, patch_bias=False),
    text_cfg=dict(vocab_size=49408, context_length=77, width=512, layers=12, heads=8,
                  act='gelu', ln_eps=1e-5, causal=True, pool='eot_argmax'))


def _alip_clip_cfg(clip: Optional[dict]) -> dict:
    """The ``clip`` config with erf GELU as the default activation of both towers."""
    if clip is None:
        return copy.deepcopy(ALIP_B32_CLIP)
    clip = copy.deepcopy(dict(clip))
    vision = dict(clip.get('vision_cfg') or {})
    if vision.get('type', 'FaceViT') == 'FaceViT':  # presets carry their own activation
        vision.setdefault('act', 'gelu')
    clip['vision_cfg'] = vision
    text = dict(clip.get('text_cfg') or {})
    text.setdefault('act', 'gelu')
    clip['text_cfg'] = text
    return clip


@MODELS.register_module()
class ALIPPretrainer(CLIPPretrainer):
    """ALIP: raw-text and synthetic-caption contrastive losses weighted by consistency gates.

    Args:
        clip: :class:`~faceanalysis.models.FaceCLIP` config; ``None`` = ALIP's ViT-B/32.
            Towers built as :class:`FaceViT` / the text tower default to ``act='gelu'``.
        gates: :class:`ConsistencyGates` config (``momentum=0.99, gamma=2.0, init_value=1.0``).
        loss: :class:`AdaptiveClipLoss` config.
        logit_scale_clamp: ``'param'`` (ALIP), ``'forward'`` or ``None``
            (:class:`CLIPPretrainer`).
        token_drop_ratio, accumulation_steps, data_preprocessor, init_cfg: as in
            :class:`CLIPPretrainer` (ALIP itself drops no tokens).

    Batches (after the data preprocessor): ``images`` (B, 3, H, W) float, ``text`` (B, L) and
    ``text_aux`` (B, L') long token ids. ``forward(mode='loss')`` returns ``loss_raw``,
    ``loss_caption``, ``logit_scale`` and the ``gate_*`` statistics
    (:meth:`ConsistencyGates.log_vars`); ``mode='predict'`` embeds ``images`` and ``text`` for
    retrieval like :class:`CLIPPretrainer` (``text_aux`` is not needed there).
    """

    def __init__(self, clip: Optional[dict] = None, gates: Optional[dict] = None,
                 loss: Optional[dict] = None, token_drop_ratio: float = 0.,
                 logit_scale_clamp: Optional[str] = 'param', accumulation_steps: int = 1,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(clip=_alip_clip_cfg(clip), loss=loss or dict(type='AdaptiveClipLoss'),
                         token_drop_ratio=token_drop_ratio,
                         logit_scale_clamp=logit_scale_clamp,
                         accumulation_steps=accumulation_steps,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(self.loss_module, AdaptiveClipLoss):
            raise TypeError('ALIPPretrainer needs an AdaptiveClipLoss (weighted raw-text and '
                            f'caption terms), got {type(self.loss_module).__name__}')
        self.gates = MODELS.build(gates or dict(type='ConsistencyGates'))
        # Set while an accumulated (feature-cache) step runs: None until its first loss pass
        # has stepped the gates, then that pass's weights and statistics, reused by the later
        # passes of the same step.
        self._accumulating = False
        self._step_gate: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------------ features and losses
    def extract_features(self, images: torch.Tensor, text: torch.Tensor,
                         text_aux: Optional[torch.Tensor] = None, **batch) -> Dict[str, Any]:
        """``image``, ``text`` and ``text_aux`` (B, E), L2-normalised; ``losses`` empty."""
        if text_aux is None:
            raise KeyError("ALIPPretrainer: the batch has no 'text_aux' (token ids of the "
                           'synthetic caption); the dataset must yield a second caption per '
                           "sample and the pipeline must tokenize it into 'text_aux'")
        if text.shape[0] != text_aux.shape[0]:
            raise ValueError(f"ALIPPretrainer: 'text' has {text.shape[0]} rows but 'text_aux' "
                             f'{text_aux.shape[0]}')
        image = self.clip.encode_image(images, normalize=True,
                                       token_drop_ratio=self.active_token_drop_ratio)
        if text.shape[1] == text_aux.shape[1]:
            # one pass of the shared tower over both fields (the tower is per-sample, no batch
            # statistics, so this equals two separate calls)
            both = self.clip.encode_text(torch.cat([text, text_aux]), normalize=True)
            text_features, aux_features = both.split(text.shape[0])
        else:
            text_features = self.clip.encode_text(text, normalize=True)
            aux_features = self.clip.encode_text(text_aux, normalize=True)
        return dict(image=image, text=text_features, text_aux=aux_features, losses={})

    def gate_weights(self, all_image: torch.Tensor, all_text: torch.Tensor,
                     all_text_aux: torch.Tensor) -> Dict[str, Any]:
        """Gate weights for gathered (G, E) features, stepping the EMAs once per step.

        Returns:
            ``weights`` (:class:`GateWeights`) and ``log_vars`` (the ``gate_*`` scalars). In
            the later passes of an accumulated step, the first pass's result.
        """
        if self._accumulating and self._step_gate is not None:
            return self._step_gate
        s_tc = pair_cosine(all_text, all_text_aux)
        s_it = pair_cosine(all_image, all_text)
        s_ic = pair_cosine(all_image, all_text_aux)
        weights = self.gates(s_tc, s_it, s_ic, update=self.training)
        gate = dict(weights=weights, log_vars=self.gates.log_vars(weights, s_tc, s_it, s_ic))
        if self._accumulating:
            self._step_gate = gate
        return gate

    def contrastive_losses(self, features: Dict[str, Any],
                           logit_scale: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_raw``, ``loss_caption`` over the global batch, and the ``gate_*`` scalars."""
        all_image = self.loss_module.gather(features['image'])
        all_text = self.loss_module.gather(features['text'])
        all_text_aux = self.loss_module.gather(features['text_aux'])
        gate = self.gate_weights(all_image, all_text, all_text_aux)
        losses = self.loss_module.global_losses(all_image, all_text, all_text_aux, logit_scale,
                                                gate['weights'])
        losses.update(gate['log_vars'])
        return losses

    # ------------------------------------------------------------------ training step
    def accumulated_train_step(self, data: Any, optim_wrapper: OptimWrapper,
                               grad_forward: Callable[..., Dict[str, Any]],
                               no_sync: Optional[Callable[[], Any]] = None
                               ) -> Dict[str, torch.Tensor]:
        """:meth:`CLIPPretrainer.accumulated_train_step` with the gates stepped on the first of
        its loss passes only (module docstring)."""
        self._accumulating, self._step_gate = True, None
        try:
            return super().accumulated_train_step(data, optim_wrapper, grad_forward, no_sync)
        finally:
            self._accumulating, self._step_gate = False, None
