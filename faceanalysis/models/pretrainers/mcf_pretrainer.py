"""``MCFPretrainer``: MCF's "Mask Contrastive Face" pre-training as an MMEngine model.

What one training forward computes (shared/docs/pretrain.md §3.1, from MCF's published code):

1. Online branch: MAE random masking of 75% of the patches (per sample, CLS kept), our
   :class:`FaceViT` (``MCF`` preset: erf GELU, LN eps 1e-6, no ``ln_pre``, patch bias, fixed
   sin-cos table) on the visible tokens, then its final LayerNorm (``ln_post``, MAE's ``norm``)
   -> ``latent`` (B, 1 + K, D).
2. :class:`MAEDecoder` -> pixels of **all** patches -> the image ``pred_images`` (B, 3, H, W), in
   normalised-pixel space.
3. Feature loss ``1000 * FeatureDistillLoss``: a frozen MoCo-v3 ViT-B/16
   (:class:`FrozenViTTeacher`) taps blocks (2, 5, 8, 11) on ``pred_images`` and on the input;
   features ``F.normalize(dim=1)`` (the token axis: MCF's quirk, switchable), MSE summed over
   layers, the input's features as detached target. No pixel loss.
4. Contrastive loss ``MoCoV3Loss``: ``q = predictor(online_projector(latent CLS))``;
   ``k = target_projector(target_encoder CLS)`` of the same images under an **independent**
   random 75% mask, without gradient; keys all-gathered; ``CE(q̂·k̂ᵀ/T)·2T``, T = 0.2.
5. Total ``loss_feat + loss_con`` (MMEngine sums the ``loss*`` entries).

Momentum target ``θ_t ← m·θ_t + (1−m)·θ_o`` (m = 0.99) over the encoder and projector
parameters (not BatchNorm buffers, as MCF). ``momentum_update='per_step'`` (default, issue 6)
updates after each *optimizer* step: a ``register_step_post_hook`` on the optimizer, so
gradient-accumulation micro-steps and fp16 steps that the loss scaler skips do not move the
target. MCF's code instead updates inside ``forward``, on every micro-batch (0.99⁸ ≈ 0.923 per
optimizer step with ``accum_iter=8``): ``momentum_update='per_micro_batch'`` reproduces that.

The hook is attached by :meth:`MCFPretrainer.train_step` (single process) or, because
``MMDistributedDataParallel.train_step`` calls the module's ``forward`` but not its
``train_step``, by :class:`MCFMomentumHook` (``custom_hooks=[dict(type='MCFMomentumHook')]``)
under DDP. A training forward with no optimizer attached raises rather than silently never
updating the target.

Masking uses the ViT's own :meth:`FaceViT.random_keep_indices` / :meth:`FaceViT.keep_tokens`
(the two halves of FLIP's ``drop_tokens``) because the decoder must put each visible token back
at its grid position, so the kept indices are needed. The rule is MAE's (uniform noise, argsort,
keep ``int(N * (1 - ratio))``); kept tokens stay in grid order.

Checkpoint layout (``state_dict``): ``online_encoder.*`` (our FaceViT names, so
``load_visual_state_dict`` / ``FaceViT(init_cfg=Pretrained)`` read it through the
``online_encoder.`` sub-model prefix), ``target_encoder.*``, ``online_projector.{0,1,3,4}.*``,
``target_projector.*``, ``predictor.{0,1,3}.*``, ``decoder.*``. The frozen teacher is left out
(see :mod:`faceanalysis.models.teachers.frozen_vit`).
"""
from __future__ import annotations

import copy
import weakref
from typing import Any, Dict, List, Optional, Union

import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn

from faceanalysis.models.backbones.vit import FaceViT
from faceanalysis.models.data_preprocessors.image_text import (IMAGENET_MEAN_255,
                                                               IMAGENET_STD_255,
                                                               ImageTextDataPreprocessor)
from faceanalysis.models.losses.feature_distill_loss import FeatureDistillLoss  # noqa: F401
from faceanalysis.models.losses.moco_v3_loss import MoCoV3Loss  # noqa: F401
from faceanalysis.models.pretrainers.mae_decoder import MAEDecoder, init_mae_weights
from faceanalysis.models.teachers.frozen_vit import FrozenViTTeacher  # noqa: F401
from faceanalysis.registry import HOOKS, MODELS

__all__ = ['MCFPretrainer', 'MCFMomentumHook', 'build_mlp']

#: MCF's ViT-B/16 decoder: 512 wide, 8 blocks, 16 heads, MLP ratio 4.
MCF_DECODER = dict(embed_dims=512, num_layers=8, num_heads=16, feedforward_channels=2048)

MOMENTUM_MODES = ('per_step', 'per_micro_batch')


def build_mlp(in_dims: int, hidden_dims: int, out_dims: int, last_bn: bool) -> nn.Sequential:
    """MoCo v3's two-layer head, as MCF builds its projector and predictor.

    Linear (no bias) - BN - ReLU - Linear (no bias), then BN(affine=False) if ``last_bn``.
    Indices 0, 1, 3 (, 4) hold the parameters, as in MCF's ``fc`` / ``predictor`` keys.
    """
    layers: List[nn.Module] = [
        nn.Linear(in_dims, hidden_dims, bias=False),
        nn.BatchNorm1d(hidden_dims),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dims, out_dims, bias=False),
    ]
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dims, affine=False))
    return nn.Sequential(*layers)


@MODELS.register_module()
class MCFPretrainer(BaseModel):
    """MAE reconstruction judged by a frozen teacher + MoCo-v3 contrast between random masks.

    Args:
        teacher: :class:`FrozenViTTeacher` config, e.g. ``dict(type='FrozenViTTeacher',
            backbone=dict(type='MCF', arch='base'), checkpoint='vit-b-300ep.pth.tar',
            out_indices=(2, 5, 8, 11), input_size=224)``.
        encoder: online encoder config (a FaceViT preset). ``final_norm`` and
            ``freeze_pos_embed`` default to True (MAE's ``norm`` and fixed table).
        decoder: :class:`MAEDecoder` sizes and switches (``in_dims``, grid and patch come from
            the encoder).
        projector_hidden_dims: hidden width of projector and predictor (MCF: 4096).
        projection_dims: output width of projector and predictor (MCF: 256).
        feature_loss: :class:`FeatureDistillLoss` config (MCF: ``norm_dim=1``,
            ``loss_weight=1000``).
        contrastive_loss: :class:`MoCoV3Loss` config (MCF: ``temperature=0.2``).
        mask_ratio: fraction of patches removed in both views (MCF: 0.75).
        momentum: m of the target update (MCF: 0.99, constant; a hook may change
            ``model.momentum`` for a schedule).
        momentum_update: ``'per_step'`` (after every optimizer step) or ``'per_micro_batch'``
            (MCF's code: every training forward, before computing the keys).
        data_preprocessor: defaults to :class:`ImageTextDataPreprocessor` with ImageNet
            statistics (MCF's ``Normalize``).
    """

    def __init__(self, teacher: dict, encoder: Optional[dict] = None,
                 decoder: Optional[dict] = None, projector_hidden_dims: int = 4096,
                 projection_dims: int = 256, feature_loss: Optional[dict] = None,
                 contrastive_loss: Optional[dict] = None, mask_ratio: float = 0.75,
                 momentum: float = 0.99, momentum_update: str = 'per_step',
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = ImageTextDataPreprocessor(mean=IMAGENET_MEAN_255,
                                                          std=IMAGENET_STD_255)
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if momentum_update not in MOMENTUM_MODES:
            raise ValueError(f'momentum_update must be one of {MOMENTUM_MODES}, got '
                             f'{momentum_update!r}')
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        self.momentum = float(momentum)
        self.momentum_update = momentum_update
        self.mask_ratio = float(mask_ratio)

        encoder_cfg = dict(encoder or dict(type='MCF', arch='base', img_size=224))
        encoder_cfg.setdefault('final_norm', True)
        encoder_cfg.setdefault('freeze_pos_embed', True)
        self.online_encoder = MODELS.build(encoder_cfg)
        vit = self.online_encoder
        if vit.ln_post is None or vit.proj is not None or vit.mask_token is not None:
            raise ValueError('MCFPretrainer encoder must have final_norm=True (MAE norm) and no '
                             'output_dim / mask_token (unused parameters would break DDP)')
        num_patches = vit.grid_size[0] * vit.grid_size[1]
        self.num_visible = int(num_patches * (1 - self.mask_ratio))  # MAE's rule
        if not 0.0 <= self.mask_ratio < 1.0 or self.num_visible < 1:
            raise ValueError(f'mask_ratio {mask_ratio} leaves {self.num_visible} of '
                             f'{num_patches} patches visible; it must leave at least one')

        self.decoder = MAEDecoder(in_dims=vit.embed_dims, grid_size=vit.grid_size,
                                  patch_size=vit.patch_size,
                                  in_channels=vit.conv1.in_channels,
                                  **dict(decoder or MCF_DECODER))
        self.online_projector = build_mlp(vit.embed_dims, projector_hidden_dims,
                                          projection_dims, last_bn=True)
        self.predictor = build_mlp(projection_dims, projector_hidden_dims, projection_dims,
                                   last_bn=False)
        self._init_online_weights()

        self.target_encoder = copy.deepcopy(self.online_encoder)
        self.target_encoder.init_cfg = None  # filled from the online encoder, never loaded
        self.target_projector = copy.deepcopy(self.online_projector)
        self.target_encoder.requires_grad_(False)
        self.target_projector.requires_grad_(False)

        self.teacher = MODELS.build(dict(dict(type='FrozenViTTeacher'), **teacher))
        self.feature_loss = MODELS.build(
            dict(feature_loss or dict(type='FeatureDistillLoss', norm_dim=1, loss_weight=1000.)))
        self.contrastive_loss = MODELS.build(
            dict(contrastive_loss or dict(type='MoCoV3Loss', temperature=0.2)))
        # Weak: a deep copy of this model (EMA) must not drag the optimizer along.
        self._hooked_optimizer: Optional[weakref.ref] = None

    # ------------------------------------------------------------------ weights
    def _init_online_weights(self) -> None:
        """MAE's initialisation of the online encoder and of the heads (decoder: its own).

        Linear layers xavier-uniform with zero bias, LayerNorm (1, 0), the patch embedding
        initialised like a Linear on its flattened kernel, CLS normal(0.02); BatchNorm keeps
        PyTorch's defaults. The position table stays the fixed sin-cos one.
        """
        vit = self.online_encoder
        init_mae_weights(vit)
        nn.init.xavier_uniform_(vit.conv1.weight.view(vit.conv1.weight.shape[0], -1))
        nn.init.normal_(vit.class_embedding, std=0.02)
        init_mae_weights(self.online_projector)
        init_mae_weights(self.predictor)

    def init_weights(self) -> None:
        """Run the sub-modules' ``init_cfg`` (e.g. a pre-trained online encoder), then copy
        the online encoder and projector into the target, as MCF does after loading."""
        super().init_weights()
        self.copy_online_to_target()

    @torch.no_grad()
    def copy_online_to_target(self) -> None:
        """θ_t ← θ_o for encoder and projector parameters."""
        for target, online in self._momentum_pairs():
            target.copy_(online)

    def _momentum_pairs(self):
        online = [*self.online_encoder.parameters(), *self.online_projector.parameters()]
        target = [*self.target_encoder.parameters(), *self.target_projector.parameters()]
        return list(zip(target, online))

    @torch.no_grad()
    def update_target(self) -> None:
        """θ_t ← m·θ_t + (1−m)·θ_o over encoder and projector parameters (not buffers)."""
        target, online = map(list, zip(*self._momentum_pairs()))
        torch._foreach_mul_(target, self.momentum)
        torch._foreach_add_(target, online, alpha=1.0 - self.momentum)

    # ------------------------------------------------------------------ momentum schedule
    def attach_optimizer(self, optim_wrapper: Union[OptimWrapper, torch.optim.Optimizer]) -> None:
        """Update the target after every step of this optimizer (``momentum_update='per_step'``).

        Idempotent. A step-post hook fires only when ``optimizer.step()`` really ran: not on
        accumulation micro-steps (MMEngine's ``OptimWrapper`` calls ``step`` only when
        ``should_update()``) and not when the fp16 loss scaler skips a step with inf gradients.
        """
        optimizer = getattr(optim_wrapper, 'optimizer', optim_wrapper)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f'MCFPretrainer.attach_optimizer needs an OptimWrapper or a torch '
                            f'optimizer, got {type(optim_wrapper).__name__} (one optimizer for '
                            'the whole model; OptimWrapperDict is not supported)')
        if self._hooked_optimizer is not None and self._hooked_optimizer() is optimizer:
            return
        optimizer.register_step_post_hook(self._after_optimizer_step)
        self._hooked_optimizer = weakref.ref(optimizer)

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any,
                              kwargs: Any) -> None:
        # A hook left on an optimizer that is no longer the attached one does nothing.
        attached = self._hooked_optimizer() if self._hooked_optimizer is not None else None
        if self.momentum_update == 'per_step' and attached is optimizer:
            self.update_target()

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """MMEngine's train step, with the target update hooked to ``optim_wrapper``'s steps."""
        if self.momentum_update == 'per_step':
            self.attach_optimizer(optim_wrapper)
        return super().train_step(data, optim_wrapper)

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor, mode: str = 'loss', **batch: Any):
        """MMEngine entry point.

        Args:
            images: normalised float images (B, 3, H, W) at the encoder's ``img_size``.
            mode: ``'loss'`` -> ``dict(loss_feat, loss_con)`` (float32 scalars);
                ``'predict'`` -> one ``dict(feature=(D,))`` per sample, the online encoder's
                normalised CLS on the unmasked image (plus ``key`` when the batch has keys);
                ``'tensor'`` -> :meth:`reconstruct`'s dict.
            batch: other batch entries (``key`` ...), unused in training.
        """
        self._check_images(images)
        if mode == 'loss':
            return self.loss(images)
        if mode == 'predict':
            features = self.extract_feat(images)
            keys = batch.get('key')
            return [dict(feature=feature, **({'key': keys[i]} if keys is not None else {}))
                    for i, feature in enumerate(features)]
        if mode == 'tensor':
            return self.reconstruct(images)
        raise ValueError(f"MCFPretrainer mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def _check_images(self, images: torch.Tensor) -> None:
        expected = (self.online_encoder.conv1.in_channels, *self.online_encoder.img_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f'MCFPretrainer expects images (B, {expected[0]}, {expected[1]}, '
                             f'{expected[2]}) (the decoder grid is fixed), got '
                             f'{tuple(images.shape)}')

    def random_keep_indices(self, batch: int, device: torch.device) -> torch.Tensor:
        """MAE random masking: (B, K) grid indices of the visible patches, ascending, per sample
        independent (uniform noise, argsort, keep the K = int(N * (1 - ratio)) lowest)."""
        return FaceViT.random_keep_indices(batch, self.decoder.num_patches, self.num_visible,
                                           device)

    @staticmethod
    def encode_visible(encoder: nn.Module, images: torch.Tensor,
                       kept_indices: torch.Tensor) -> torch.Tensor:
        """Encoder on CLS + the kept patches, then its final norm: (B, 1 + K, D)."""
        tokens, _ = encoder.prepare_tokens(images)  # position already added, as MAE does
        tokens, _ = encoder.transformer(FaceViT.keep_tokens(tokens, kept_indices))
        return encoder.ln_post(tokens)

    def reconstruct(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Online branch on a fresh random mask.

        Returns:
            ``pred_images`` (B, 3, H, W) normalised pixels of every patch, ``kept_indices``
            (B, K) the visible patches, ``latent`` (B, 1 + K, D) the normed encoder output.
        """
        kept = self.random_keep_indices(images.shape[0], images.device)
        latent = self.encode_visible(self.online_encoder, images, kept)
        pred_images = self.decoder.unpatchify(self.decoder(latent, kept))
        return dict(pred_images=pred_images, kept_indices=kept, latent=latent)

    def loss(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """MCF's two losses on one batch (see the module docstring)."""
        if self.training and torch.is_grad_enabled() and self.momentum_update == 'per_step' \
                and self._hooked_optimizer is None:
            raise RuntimeError(
                "MCFPretrainer(momentum_update='per_step') has no optimizer attached, so the "
                'target encoder would never move. Train through MCFPretrainer.train_step, add '
                "custom_hooks=[dict(type='MCFMomentumHook')] (needed under DDP, whose wrapper "
                'bypasses train_step), or call model.attach_optimizer(optim_wrapper).')
        online = self.reconstruct(images)
        with torch.no_grad():
            target_features = self.teacher(images)
        loss_feat = self.feature_loss(self.teacher(online['pred_images']), target_features)

        queries = self.predictor(self.online_projector(online['latent'][:, 0]))
        if self.training and self.momentum_update == 'per_micro_batch':
            self.update_target()
        with torch.no_grad():
            kept = self.random_keep_indices(images.shape[0], images.device)
            keys = self.target_projector(
                self.encode_visible(self.target_encoder, images, kept)[:, 0])
        loss_con = self.contrastive_loss(queries, keys)
        return dict(loss_feat=loss_feat, loss_con=loss_con)

    @torch.no_grad()
    def extract_feat(self, images: torch.Tensor) -> torch.Tensor:
        """Online encoder CLS after its final norm on the unmasked images: (B, D)."""
        tokens, _ = self.online_encoder.prepare_tokens(images)
        tokens, _ = self.online_encoder.transformer(tokens)
        return self.online_encoder.ln_post(tokens[:, 0])


@HOOKS.register_module()
class MCFMomentumHook(Hook):
    """Attach the runner's optimizer to :class:`MCFPretrainer` before training.

    Needed under DDP: ``MMDistributedDataParallel.train_step`` runs the module's forward, not
    its ``train_step``, so nothing else would tell the model when the optimizer stepped. Harmless
    (idempotent) in single-process runs.
    """

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'attach_optimizer'):
            raise TypeError(f'MCFMomentumHook needs a model with attach_optimizer() '
                            f'(MCFPretrainer), got {type(model).__name__}')
        model.attach_optimizer(runner.optim_wrapper)
