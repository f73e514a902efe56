"""MIM targets from a frozen teacher ViT: per-patch features to regress (``TeacherFeatureTarget``).

FaRL's MIM target is the discrete token id of each masked patch under a DALL-E dVAE (8192 codes,
BEiT's tokenizer, pretrain.md §2.1). Those weights cannot be downloaded in this environment, so the
target is pluggable (any module with the interface of :mod:`faceanalysis.models.mim_targets`), and
the two targets provided here come from a frozen teacher ViT instead:

* :class:`TeacherFeatureTarget` (this module): regress the teacher's patch tokens
  (MaskFeat / data2vec / MILAN-style feature prediction);
* :class:`~faceanalysis.models.mim_targets.CodebookTokenizer`: quantise them to ids on a fixed
  codebook, for FaRL's cross-entropy objective.

The teacher is a :class:`~faceanalysis.models.teachers.frozen_vit.FrozenViTTeacher` (MCF's):
any :class:`~faceanalysis.models.backbones.FaceViT` (or preset: ``FaRL``, ``MCF``, ``FLIP80M``)
loaded at construction from a checkpoint our converters read (a released FaRL / OpenAI-layout
CLIP visual tower, a Hugging Face CLIP, an MAE / timm or MoCo-v3 ViT, ...); a random teacher is
refused unless ``allow_random_init=True`` (tests). It is frozen (``requires_grad=False``, always
in eval mode), runs under ``torch.no_grad`` and keeps only the blocks up to the tapped one. Its
weights are NOT in the model's state dict (``FrozenViTTeacher``'s policy): a resumed run rebuilds
the teacher from the checkpoint file of its config.

Why new code: no teacher-feature MIM target exists in the stack (mmpretrain's need their own
backbones and layouts); this one reuses our ViT, converters and frozen-teacher module.

Input normalisation: the student's images arrive normalised with the student's mean/std (0-255
units, as :class:`~faceanalysis.models.data_preprocessors.ImageTextDataPreprocessor`). A teacher
trained with other statistics (MAE / MoCo-v3: ImageNet's) gets ``teacher_mean``/``teacher_std``:
the images are re-normalised as ``x_t = (x * s_std + s_mean - t_mean) / t_std`` per channel.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from faceanalysis.registry import MODELS
from ..backbones.vit import FaceViT
from ..data_preprocessors.image_text import CLIP_MEAN_255, CLIP_STD_255
from ..teachers.frozen_vit import FrozenViTTeacher

__all__ = ['FrozenTeacherTarget', 'TeacherFeatureTarget']

_FEATURE_NORMS = ('layer_norm', None)
_REGRESSION_LOSSES = ('smooth_l1', 'cosine')


def _channel_stats(values: Sequence[float], name: str) -> torch.Tensor:
    if len(values) != 3:
        raise ValueError(f'{name} needs 3 values (RGB, 0-255 units), got {values}')
    return torch.as_tensor([float(v) for v in values], dtype=torch.float32).view(1, 3, 1, 1)


class FrozenTeacherTarget(BaseModule):
    """Base of the teacher-based MIM targets: a frozen ViT giving per-patch features.

    Args:
        teacher: config of a ``FaceViT`` (or preset) matching the checkpoint's architecture; an
            ``init_cfg=dict(type='Pretrained', checkpoint=...)`` inside it is used as
            ``checkpoint``.
        checkpoint: teacher weights, any layout :func:`faceanalysis.converters.
            load_visual_state_dict` reads; loaded here, at construction.
        layer: block whose output gives the targets (0-based, negative from the end; default the
            last block, before any final norm); later blocks are not built.
        feature_norm: ``'layer_norm'`` normalises each target token over its channels without
            affine parameters (MaskFeat / data2vec), ``None`` keeps raw features.
        student_mean, student_std: the statistics the input images were normalised with (0-255
            units); :class:`~faceanalysis.models.pretrainers.FaRLPretrainer` fills them from its
            data preprocessor.
        teacher_mean, teacher_std: the teacher's own statistics (0-255 units); default: the
            student's (no re-normalisation).
        allow_random_init: accept a teacher without checkpoint (tests only: random targets).
    """

    #: Whether :meth:`forward` returns class ids (cross-entropy) or features (regression).
    discrete = False

    def __init__(self, teacher: dict, checkpoint: Optional[str] = None, layer: int = -1,
                 feature_norm: Optional[str] = 'layer_norm',
                 student_mean: Sequence[float] = CLIP_MEAN_255,
                 student_std: Sequence[float] = CLIP_STD_255,
                 teacher_mean: Optional[Sequence[float]] = None,
                 teacher_std: Optional[Sequence[float]] = None,
                 allow_random_init: bool = False, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if feature_norm not in _FEATURE_NORMS:
            raise ValueError(f'feature_norm must be one of {_FEATURE_NORMS}, got {feature_norm!r}')
        backbone = dict(teacher)
        backbone.setdefault('type', 'FaceViT')
        # FrozenViTTeacher loads at construction and never runs init_weights: take a Pretrained
        # init_cfg as the checkpoint rather than let it be ignored.
        init = backbone.pop('init_cfg', None)
        if checkpoint is None and isinstance(init, dict) and init.get('type') == 'Pretrained':
            checkpoint = init['checkpoint']
        if checkpoint is None and not allow_random_init:
            raise ValueError('the MIM teacher has no checkpoint: pass checkpoint=PATH (a FaRL / '
                             'CLIP / MAE ViT our converters read); a randomly initialised teacher '
                             'gives meaningless targets (allow_random_init=True for tests)')
        self.teacher = FrozenViTTeacher(backbone=backbone, checkpoint=checkpoint,
                                        out_indices=(layer, ),
                                        allow_random_init=allow_random_init)
        if not isinstance(self.teacher.vit, FaceViT):
            raise TypeError(f'the MIM teacher must be a FaceViT (or preset), got '
                            f'{type(self.teacher.vit).__name__} from {teacher}')
        self.layer = self.teacher.out_indices[0]
        self.feature_norm = feature_norm

        s_mean, s_std = _channel_stats(student_mean, 'student_mean'), \
            _channel_stats(student_std, 'student_std')
        t_mean = s_mean if teacher_mean is None else _channel_stats(teacher_mean, 'teacher_mean')
        t_std = s_std if teacher_std is None else _channel_stats(teacher_std, 'teacher_std')
        # x_t = x * scale + shift (see the module docstring); identity when the stats agree.
        self.register_buffer('input_scale', s_std / t_std, persistent=False)
        self.register_buffer('input_shift', (s_mean - t_mean) / t_std, persistent=False)
        self.renormalize = not (torch.equal(s_mean, t_mean) and torch.equal(s_std, t_std))

    @property
    def feature_dims(self) -> int:
        """D_t, the width of the teacher's tokens."""
        return self.teacher.vit.embed_dims

    @torch.no_grad()
    def teacher_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Teacher patch features of normalised student images.

        Args:
            images: (B, 3, H, W) float, normalised with the student's statistics.

        Returns:
            float32 (B, N, D_t), patch tokens of block ``layer`` in row-major patch order (CLS
            dropped), LayerNorm-normalised per token if ``feature_norm='layer_norm'``.
        """
        if self.renormalize:
            images = images * self.input_scale.to(images.dtype) + \
                self.input_shift.to(images.dtype)
        patches = self.teacher(images)[0][:, 1:]  # float32, CLS dropped
        if self.feature_norm == 'layer_norm':
            patches = F.layer_norm(patches, patches.shape[-1:], eps=1e-6)
        return patches

    # Interface of every MIM target (see faceanalysis.models.mim_targets).
    @property
    def num_outputs(self) -> int:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def token_losses(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean of :meth:`token_losses` over the M masked tokens (0-d float32 tensor)."""
        return self.token_losses(pred, targets).mean()


@MODELS.register_module()
class TeacherFeatureTarget(FrozenTeacherTarget):
    """Regress the frozen teacher's patch features at the masked patches.

    Args:
        loss: ``'smooth_l1'`` (default) or ``'cosine'`` (``1 - cos``, scale-free).
        beta: smooth-L1 threshold, in target units (1 = one standard deviation of a
            LayerNorm-normalised token).
        **kwargs: :class:`FrozenTeacherTarget` arguments.

    Why smooth-L1 on per-token LayerNorm-normalised features by default: normalising removes the
    teacher's per-token scale (which differs across checkpoints and blocks), so one loss weight
    fits any teacher, and the L1 tail keeps the few very large channels of CLIP-like ViTs from
    dominating the gradient (data2vec's choice of a smooth-L1 regression). ``'cosine'`` matches
    only directions (BEiT v2 / MILAN-style).

    ``forward(images)`` gives float32 (B, N, D_t); ``num_outputs`` = D_t;
    ``token_losses(pred (M, D_t), targets (M, D_t))`` the per-token loss (M,), i.e. the mean over
    channels of the smooth-L1, or ``1 - cos``.
    """

    def __init__(self, teacher: dict, loss: str = 'smooth_l1', beta: float = 1.0,
                 **kwargs) -> None:
        super().__init__(teacher, **kwargs)
        if loss not in _REGRESSION_LOSSES:
            raise ValueError(f'loss must be one of {_REGRESSION_LOSSES}, got {loss!r}')
        if beta <= 0:
            raise ValueError(f'beta must be > 0, got {beta}')
        self.loss_type = loss
        self.beta = float(beta)

    @property
    def num_outputs(self) -> int:
        return self.feature_dims

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Targets float32 (B, N, D_t) of normalised images (B, 3, H, W); no gradient."""
        return self.teacher_tokens(images)

    def token_losses(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-token loss (M,) float32 of predictions (M, D_t) against targets (M, D_t)."""
        if pred.shape != targets.shape:
            raise ValueError(f'predictions {tuple(pred.shape)} and targets '
                             f'{tuple(targets.shape)} differ')
        pred, targets = pred.float(), targets.float()
        if self.loss_type == 'cosine':
            return 1 - F.cosine_similarity(pred, targets, dim=-1)
        return F.smooth_l1_loss(pred, targets, reduction='none', beta=self.beta).mean(dim=-1)
