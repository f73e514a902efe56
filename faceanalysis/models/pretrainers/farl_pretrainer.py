"""``FaRLPretrainer``: FaRL's image-text contrastive learning plus masked image modelling.

FaRL (pretrain.md §2.1) trains a CLIP ViT-B/16 with ``L = L_ITC + L_MIM`` (equal weights,
[paper, unverified]). The masked copy of each image has ~40% of its patches, in blocks, REPLACED
by a learned ``mask_token`` (BEiT; never removed, so ``token_drop_ratio`` must stay 0), and both
copies go through the image tower in ONE forward of 2B sequences ``[clean; masked]``:

* the clean half's CLS -> ``ln_post`` -> ``proj`` -> L2-normalised image embedding -> CLIP's
  symmetric InfoNCE with the text embeddings (inherited from :class:`CLIPPretrainer`);
* the masked half's full token sequence -> :class:`~faceanalysis.models.heads.MIMHead`
  (``lm_transformer``, CLS dropped, ``ln_lm``, masked positions, ``lm_head``) -> compared with
  ``mim_target(images)`` (clean images, no gradient) at the masked positions.

The mask comes with the batch (``mim_mask`` (B, N) bool from
:class:`~faceanalysis.datasets.transforms.BlockwiseMaskGenerator`). The target is pluggable
(:mod:`faceanalysis.models.mim_targets`): FaRL's DALL-E dVAE ids are not available here; a frozen
teacher's features (regression) or their ids on a fixed codebook (FaRL's cross-entropy) are.

``loss_mim`` is the mean over ALL masked tokens of the batch a rank receives (BEiT's / FaRL's CE
mean). With feature-cache accumulation (``accumulation_steps`` > 1) this stays exact: each
micro-batch contributes per-sample loss sums and masked counts as features
(``mim_loss_sum``, ``mim_num_masked``, ``mim_correct``), which :meth:`CLIPPretrainer.
accumulated_train_step` splices like the embeddings, and :meth:`contrastive_losses` divides the
spliced sum by the spliced count; the gradient of each pass flows through its own micro-batch
only, so the summed gradient equals one full-batch step's (cost: like the towers, the teacher
then runs twice per sample, once in the no-grad cache pass). ``mim_acc`` (discrete targets) is
logged, never summed into ``loss``.

State dict: ``clip.*`` (OpenAI layout, ``clip.visual.mask_token`` included), ``mim_head.
{lm_transformer.resblocks.*, ln_lm.*, lm_head.*}`` (FaRL's released names under ``visual.``),
``mim_target.codebook`` (:class:`CodebookTokenizer`); the frozen teacher is not saved (rebuilt
from its checkpoint file). ``predict`` embeds clean images only.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from faceanalysis.registry import MODELS
from .. import mim_targets  # noqa: F401  (registers the targets)
from ..heads.mim_head import MIMHead  # noqa: F401  (registers MIMHead)
from ..layers.transformer import QuickGELU
from .clip_pretrainer import CLIPPretrainer

__all__ = ['FaRLPretrainer']

_TARGET_API = ('num_outputs', 'token_losses', 'forward')


def _activation_name(module: nn.Module) -> str:
    """Our name (``layers.transformer.ACTIVATIONS``) of a built activation module."""
    if isinstance(module, QuickGELU):
        return 'quick_gelu'
    if isinstance(module, nn.GELU):
        return 'gelu_tanh' if module.approximate == 'tanh' else 'gelu'
    raise ValueError(f'unknown activation module {type(module).__name__}')


@MODELS.register_module()
class FaRLPretrainer(CLIPPretrainer):
    """CLIP contrastive loss + masked image modelling on ``[clean; masked]`` (FaRL).

    Args:
        clip: :class:`~faceanalysis.models.FaceCLIP` config; its image tower is built with
            ``mask_token=True``.
        mim_target: a MIM target config (:mod:`faceanalysis.models.mim_targets`), e.g.
            ``dict(type='CodebookTokenizer', teacher=dict(type='FaRL', arch='base'),
            checkpoint=PATH)``. Teacher-based targets get ``student_mean``/``student_std`` from
            this model's data preprocessor unless given.
        mim_head: :class:`MIMHead` overrides (default ``num_layers=1``, FaRL's released head);
            width, heads, MLP width, activation and LayerNorm eps default to the image tower's,
            ``num_outputs`` to ``mim_target.num_outputs``.
        mim_loss_weight: weight of ``loss_mim`` (FaRL: 1, [paper, unverified]).
        loss, logit_scale_clamp, accumulation_steps, data_preprocessor, init_cfg: as
            :class:`CLIPPretrainer`.
        token_drop_ratio: must be 0 (FaRL replaces masked tokens, it never removes them).

    Batches: ``images`` (B, 3, H, W) float, ``text`` (B, L) long, ``mim_mask`` (B, N) bool with
    N = (H / p) * (W / p) in row-major order. ``forward(mode='loss')`` returns
    ``loss_contrastive``, ``loss_mim``, ``logit_scale`` and, for discrete targets, ``mim_acc``.
    """

    def __init__(self, clip: dict, mim_target: dict, mim_head: Optional[dict] = None,
                 mim_loss_weight: float = 1.0, loss: Optional[dict] = None,
                 token_drop_ratio: float = 0., logit_scale_clamp: Optional[str] = 'forward',
                 accumulation_steps: int = 1, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if token_drop_ratio:
            raise ValueError(f'FaRLPretrainer replaces masked patches by a mask token and never '
                             f'removes tokens: token_drop_ratio must be 0, got {token_drop_ratio}')
        clip = dict(clip)
        vision = dict(clip.get('vision_cfg') or {})
        if vision.get('mask_token') is False:
            raise ValueError('FaRLPretrainer needs the image tower built with mask_token=True')
        vision['mask_token'] = True
        clip['vision_cfg'] = vision
        super().__init__(clip=clip, loss=loss, token_drop_ratio=0.,
                         logit_scale_clamp=logit_scale_clamp,
                         accumulation_steps=accumulation_steps,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)

        target_cfg = dict(mim_target)
        mean, std = (getattr(self.data_preprocessor, name, None) for name in ('mean', 'std'))
        if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
            target_cfg.setdefault('student_mean', tuple(mean.flatten().tolist()))
            target_cfg.setdefault('student_std', tuple(std.flatten().tolist()))
        self.mim_target = MODELS.build(target_cfg)
        missing = [name for name in _TARGET_API if not hasattr(self.mim_target, name)]
        if missing:
            raise TypeError(f'MIM target {type(self.mim_target).__name__} lacks {missing} (see '
                            'faceanalysis.models.mim_targets for the interface)')

        visual = self.clip.visual
        block = visual.transformer.resblocks[0]
        head_cfg = dict(type='MIMHead', num_layers=1)
        head_cfg.update(mim_head or {})
        head_cfg.setdefault('embed_dims', visual.embed_dims)
        head_cfg.setdefault('num_heads', block.attn.num_heads)
        head_cfg.setdefault('feedforward_channels', block.mlp.c_fc.out_features)
        head_cfg.setdefault('act', _activation_name(block.mlp.act))
        head_cfg.setdefault('ln_eps', block.ln_1.eps)
        head_cfg.setdefault('num_outputs', self.mim_target.num_outputs)
        if head_cfg['num_outputs'] != self.mim_target.num_outputs:
            raise ValueError(f"mim_head num_outputs={head_cfg['num_outputs']} but the target "
                             f'{type(self.mim_target).__name__} has {self.mim_target.num_outputs}')
        self.mim_head = MODELS.build(head_cfg)
        self.mim_loss_weight = float(mim_loss_weight)
        # The target is frozen and identical on every rank (checkpoint / seeded codebook): keep
        # DDP from broadcasting its buffers (a 8192 x 768 codebook) at every forward.
        self._ddp_params_and_buffers_to_ignore = [
            f'mim_target.{name}' for name, _ in
            [*self.mim_target.named_parameters(), *self.mim_target.named_buffers()]]

    # ------------------------------------------------------------------ features and losses
    def _check_mask(self, mim_mask: Optional[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        if mim_mask is None:
            raise ValueError('FaRLPretrainer needs a mim_mask (B, N) bool in the batch: add '
                             'BlockwiseMaskGenerator to the pipeline')
        patch = self.clip.visual.patch_size
        expected = (images.shape[0], (images.shape[-2] // patch) * (images.shape[-1] // patch))
        if tuple(mim_mask.shape) != expected:
            raise ValueError(f'mim_mask is {tuple(mim_mask.shape)} but images '
                             f'{tuple(images.shape)} with patch {patch} need {expected}: check '
                             "BlockwiseMaskGenerator's grid_size")
        return mim_mask.to(device=images.device, dtype=torch.bool)

    def extract_features(self, images: torch.Tensor, text: torch.Tensor,
                         mim_mask: Optional[torch.Tensor] = None, **batch) -> Dict[str, Any]:
        """Per-sample features of a (micro-)batch, from one tower forward of 2B sequences.

        Returns:
            ``image`` (B, E) and ``text`` (B, E) L2-normalised; ``mim_loss_sum`` (B,) float32,
            the sum of the per-token MIM losses of each sample's masked patches;
            ``mim_num_masked`` (B,) float32 masked patches per sample; for discrete targets
            ``mim_correct`` (B,) float32 correctly predicted masked patches; ``losses`` (empty:
            the MIM loss is normalised over the whole batch in :meth:`contrastive_losses`).
        """
        if self.active_token_drop_ratio > 0:
            raise ValueError('FaRLPretrainer never drops tokens; token_drop_ratio must be 0')
        mask = self._check_mask(mim_mask, images)
        batch_size = images.shape[0]
        visual = self.clip.visual
        # [clean; masked]: the clean half's mask is all False, so its patches pass unchanged.
        tokens, _ = visual.prepare_tokens(torch.cat([images, images]),
                                          mask=torch.cat([torch.zeros_like(mask), mask]))
        tokens, _ = visual.transformer(tokens)
        clean, corrupted = tokens[:batch_size], tokens[batch_size:]
        image = F.normalize(self.clip.visual.pool_tokens(clean), dim=-1)
        text_features = self.clip.encode_text(text, normalize=True)

        pred = self.mim_head(corrupted, mask)  # (M, K), sample-major
        with torch.no_grad():
            targets = self.mim_target(images)
        if tuple(targets.shape[:2]) != tuple(mask.shape):
            raise ValueError(f'MIM target {type(self.mim_target).__name__} gives '
                             f'{tuple(targets.shape)} for a mask of {tuple(mask.shape)}: the '
                             "teacher's patch grid must equal the student's")
        masked_targets = targets[mask]
        token_losses = self.mim_target.token_losses(pred, masked_targets)
        sample_index = mask.nonzero(as_tuple=True)[0]
        loss_sum = token_losses.new_zeros(batch_size).index_add(0, sample_index, token_losses)
        if token_losses.numel() == 0:
            # Keep the head in the graph (zero gradient) so DDP sees every parameter used.
            loss_sum = loss_sum + pred.sum() * 0
        features = dict(image=image, text=text_features, losses={}, mim_loss_sum=loss_sum,
                        mim_num_masked=mask.sum(dim=1).float())
        if getattr(self.mim_target, 'discrete', False):
            correct = (pred.detach().argmax(dim=-1) == masked_targets).float()
            features['mim_correct'] = correct.new_zeros(batch_size).index_add(
                0, sample_index, correct)
        return features

    def contrastive_losses(self, features: Dict[str, Any],
                           logit_scale: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_contrastive`` and ``loss_mim`` (mean over every masked token of the possibly
        spliced batch), plus ``mim_acc`` (no gradient) for discrete targets."""
        losses = super().contrastive_losses(features, logit_scale)
        num_masked = features['mim_num_masked'].sum().clamp(min=1)
        losses['loss_mim'] = self.mim_loss_weight * features['mim_loss_sum'].sum() / num_masked
        if 'mim_correct' in features:
            losses['mim_acc'] = (features['mim_correct'].sum() / num_masked).detach()
        return losses
