"""``CLIPPretrainer``: image-text contrastive pre-training of a :class:`FaceCLIP`.

One model serves three recipes by configuration (pretrain.md §4, §5, §9):

* CLIP / FLIP-80M fine-tuning: ``token_drop_ratio=0``; FLIP-80M starts from a Hugging Face
  ``CLIPModel`` through ``clip.init_cfg=dict(type='Pretrained', checkpoint=DIR)`` and keeps its
  temperature unclamped (``logit_scale_clamp=None``, TencentPretrain's ``ClrTarget``).
* FLIP: ``token_drop_ratio=0.5`` (or 0.75) removes that fraction of patch tokens per sample in
  training (CLS kept); :class:`~faceanalysis.engine.UnmaskedTuningHook` sets it to 0 for the
  final unmasked phase. Evaluation never drops tokens.
* FaRL / ALIP subclass it and change :meth:`extract_features` / :meth:`contrastive_losses`.

Temperature (``logit_scale_clamp``): ``'forward'`` uses ``exp(min(s, ln 100))`` (FLIP, open_clip
forward); ``'param'`` clamps the parameter in place to [0, ln 100] before every training forward,
i.e. after every optimizer step (open_clip's training loop, ALIP); ``None`` never clamps.

Gradient accumulation (``accumulation_steps`` = k): the batch a rank receives is split into k
micro-batches, and the contrastive loss is computed over the WHOLE batch, so every micro-batch
still sees all negatives (open_clip's feature cache, pretrain.md §7.6): a first pass embeds all
micro-batches without gradient; then each micro-batch is embedded again with gradient (the RNG
state of the first pass is replayed, so FLIP's token drop picks the same tokens), spliced into
the cached features, and the full loss is back-propagated through that micro-batch only. The
summed gradient equals that of one big batch; peak activation memory is that of a micro-batch.
MMEngine's ``accumulative_counts`` (naive accumulation, fewer negatives: MCF's and
TencentPretrain's behaviour) stays available through the optimizer wrapper for parity runs.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from faceanalysis.registry import MODELS

__all__ = ['CLIPPretrainer', 'build_data_preprocessor', 'split_batch']

LOGIT_SCALE_MAX = math.log(100)
_CLAMP_MODES = ('forward', 'param', None)


def build_data_preprocessor(cfg: Optional[Union[dict, torch.nn.Module]]) -> torch.nn.Module:
    """Build a data preprocessor from our registry (``BaseModel`` would look in MMEngine's
    root registry, which does not know faceanalysis' types); default
    :class:`ImageTextDataPreprocessor` with CLIP statistics."""
    if cfg is None:
        cfg = dict(type='ImageTextDataPreprocessor')
    return MODELS.build(cfg) if isinstance(cfg, dict) else cfg


def split_batch(batch: Dict[str, Any], chunks: int) -> List[Dict[str, Any]]:
    """Split a collated batch dict along dim 0 into ``chunks`` micro-batches.

    Tensors are split with ``tensor_split`` (sizes differ by at most one), lists and tuples
    (keys, captions) by the same boundaries; other values are shared.
    """
    size = None
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            size = value.shape[0]
            break
    if size is None:
        raise ValueError('cannot split a batch without a batched tensor')
    if chunks > size:
        raise ValueError(f'accumulation_steps={chunks} exceeds the batch size {size}')
    bounds = [round(i * size / chunks) for i in range(chunks + 1)]
    parts: List[Dict[str, Any]] = [dict() for _ in range(chunks)]
    for key, value in batch.items():
        for index, part in enumerate(parts):
            start, end = bounds[index], bounds[index + 1]
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                part[key] = value[start:end]
            elif isinstance(value, (list, tuple)) and len(value) == size:
                part[key] = value[start:end]
            else:
                part[key] = value
    return parts


class _RngSnapshot:
    """CPU (and current CUDA device) RNG state, to replay a forward pass's randomness."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda)


@MODELS.register_module()
class CLIPPretrainer(BaseModel):
    """Contrastive image-text pre-training (CLIP, FLIP token masking, FLIP-80M fine-tuning).

    Args:
        clip: :class:`~faceanalysis.models.FaceCLIP` config (``type`` optional); its
            ``init_cfg=dict(type='Pretrained', checkpoint=...)`` starts from released weights.
        loss: contrastive loss config (:class:`~faceanalysis.models.losses.ClipContrastiveLoss`).
        token_drop_ratio: fraction of patch tokens removed per sample in training (FLIP).
        logit_scale_clamp: ``'forward' | 'param' | None`` (module docstring).
        accumulation_steps: micro-batches per optimizer step with all negatives kept.
        data_preprocessor: defaults to :class:`ImageTextDataPreprocessor` with CLIP statistics.
        init_cfg: MMEngine init config of the whole model.

    Batches (after the data preprocessor): ``images`` (B, 3, H, W) float, ``text`` (B, L) long,
    optional ``key`` / ``caption`` lists. ``forward(mode='loss')`` returns ``loss_contrastive``
    plus ``logit_scale`` (the multiplier, logged); ``mode='predict'`` returns one dict per
    sample with L2-normalised ``image_embedding`` and ``text_embedding`` (for
    :class:`~faceanalysis.evaluation.ImageTextRetrievalMetric`); ``mode='tensor'`` the feature
    dict of :meth:`extract_features`.
    """

    def __init__(self, clip: dict, loss: Optional[dict] = None, token_drop_ratio: float = 0.,
                 logit_scale_clamp: Optional[str] = 'forward', accumulation_steps: int = 1,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(data_preprocessor=build_data_preprocessor(data_preprocessor),
                         init_cfg=init_cfg)
        if logit_scale_clamp not in _CLAMP_MODES:
            raise ValueError(f'logit_scale_clamp must be one of {_CLAMP_MODES}, '
                             f'got {logit_scale_clamp!r}')
        if accumulation_steps < 1:
            raise ValueError(f'accumulation_steps must be >= 1, got {accumulation_steps}')
        clip = dict(clip)
        clip.setdefault('type', 'FaceCLIP')
        # The clamp lives in FaceCLIP.logit_scale_exp; 'param' and None use the raw parameter.
        clip['logit_scale_max'] = LOGIT_SCALE_MAX if logit_scale_clamp == 'forward' else None
        self.clip = MODELS.build(clip)
        self.loss_module = MODELS.build(loss or dict(type='ClipContrastiveLoss'))
        self.token_drop_ratio = float(token_drop_ratio)
        self.logit_scale_clamp = logit_scale_clamp
        self.accumulation_steps = accumulation_steps

    # ------------------------------------------------------------------ features and losses
    @property
    def active_token_drop_ratio(self) -> float:
        """The token drop ratio in effect: the configured one in training, 0 in evaluation."""
        return self.token_drop_ratio if self.training else 0.

    def extract_features(self, images: torch.Tensor, text: torch.Tensor,
                         **batch) -> Dict[str, Any]:
        """Per-sample features of a (micro-)batch.

        Returns:
            ``image`` (B, E) and ``text`` (B, E), L2-normalised, and ``losses``: per-sample
            losses already averaged over this micro-batch (empty here; FaRL's MIM loss).
        """
        image = self.clip.encode_image(images, normalize=True,
                                       token_drop_ratio=self.active_token_drop_ratio)
        text_features = self.clip.encode_text(text, normalize=True)
        return dict(image=image, text=text_features, losses={})

    def logit_scale(self) -> torch.Tensor:
        """The similarity multiplier ``exp(logit_scale)`` (clamped in ``'forward'`` mode)."""
        return self.clip.logit_scale_exp()

    def contrastive_losses(self, features: Dict[str, Any],
                           logit_scale: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Batch-level losses over (possibly spliced) features: ``loss_contrastive``."""
        return dict(loss_contrastive=self.loss_module(features['image'], features['text'],
                                                      logit_scale))

    def _losses(self, features: Dict[str, Any], logit_scale: torch.Tensor,
                local_weight: float = 1.) -> Dict[str, torch.Tensor]:
        losses = self.contrastive_losses(features, logit_scale)
        for name, value in features['losses'].items():
            losses[name] = value * local_weight
        losses['logit_scale'] = logit_scale.detach().float()
        return losses

    def _clamp_logit_scale(self) -> None:
        if self.logit_scale_clamp == 'param' and self.training:
            with torch.no_grad():
                self.clip.logit_scale.clamp_(0, LOGIT_SCALE_MAX)

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor, mode: str = 'loss', **batch) -> Any:
        if mode == 'loss':
            self._clamp_logit_scale()
            features = self.extract_features(images, **batch)
            return self._losses(features, self.logit_scale())
        if mode == 'features':
            self._clamp_logit_scale()
            return self.extract_features(images, **batch)
        if mode == 'predict':
            return self.predict(images, **batch)
        if mode == 'tensor':
            return self.extract_features(images, **batch)
        raise ValueError(f"mode must be 'loss', 'features', 'predict' or 'tensor', got {mode!r}")

    @torch.no_grad()
    def predict(self, images: torch.Tensor, text: Optional[torch.Tensor] = None,
                key: Optional[Sequence[str]] = None, caption: Optional[Sequence[str]] = None,
                **batch) -> List[Dict[str, Any]]:
        """One dict per sample: ``image_embedding`` (E,), ``text_embedding`` (E,) (if ``text``),
        ``key`` and ``caption`` (if the batch has them); embeddings L2-normalised, float32."""
        image = self.clip.encode_image(images, normalize=True).float()
        text_features = self.clip.encode_text(text, normalize=True).float() \
            if text is not None else None
        samples = []
        for index in range(image.shape[0]):
            sample: Dict[str, Any] = dict(image_embedding=image[index])
            if text_features is not None:
                sample['text_embedding'] = text_features[index]
            if key is not None:
                sample['key'] = key[index]
            if caption is not None:
                sample['caption'] = caption[index]
            samples.append(sample)
        return samples

    # ------------------------------------------------------------------ training step
    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """One optimizer step; see the module docstring for ``accumulation_steps`` > 1."""
        if self.accumulation_steps == 1:
            return super().train_step(data, optim_wrapper)
        return self.accumulated_train_step(data, optim_wrapper, grad_forward=self)

    def accumulated_train_step(self, data: Any, optim_wrapper: OptimWrapper,
                               grad_forward: Callable[..., Dict[str, Any]],
                               no_sync: Optional[Callable[[], Any]] = None
                               ) -> Dict[str, torch.Tensor]:
        """Feature-cache accumulation: exact full-batch contrastive gradient in micro-batches.

        Args:
            data: the collated batch of this rank.
            optim_wrapper: with ``accumulative_counts == 1`` (this step does the accumulating).
            grad_forward: module called with ``mode='features'`` for the gradient passes: the
                model itself, or its DDP wrapper (so gradients are all-reduced).
            no_sync: DDP's ``no_sync`` context factory, used for every micro-batch but the last.
        """
        if getattr(optim_wrapper, '_accumulative_counts', 1) != 1:
            raise ValueError('accumulation_steps > 1 accumulates inside the model; set the '
                             "optim_wrapper's accumulative_counts to 1")
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
        chunks = split_batch(data, self.accumulation_steps)
        total = sum(chunk['images'].shape[0] for chunk in chunks)

        snapshots, cached = [], []
        with torch.no_grad():
            for chunk in chunks:
                snapshots.append(_RngSnapshot())
                with optim_wrapper.optim_context(self):
                    cached.append(self(**chunk, mode='features'))
        feature_keys = [key for key, value in cached[0].items()
                        if isinstance(value, torch.Tensor)]

        log_vars: Dict[str, torch.Tensor] = {}
        for index, chunk in enumerate(chunks):
            snapshots[index].restore()
            last = index == len(chunks) - 1
            sync_context = no_sync() if (no_sync is not None and not last) \
                else contextlib.nullcontext()
            with sync_context:
                with optim_wrapper.optim_context(self):
                    fresh = grad_forward(**chunk, mode='features')
                    merged = {
                        key: torch.cat([fresh[key] if j == index else cached[j][key]
                                        for j in range(len(chunks))])
                        for key in feature_keys
                    }
                    merged['losses'] = fresh['losses']
                    scale = self.logit_scale()
                    # The temperature enters every pass's loss: count its gradient once, in the
                    # last pass, which is the one DDP synchronises (a parameter without gradient
                    # there would leave its bucket un-reduced).
                    if not last:
                        scale = scale.detach()
                    losses = self._losses(merged, scale,
                                          local_weight=chunk['images'].shape[0] / total)
                parsed, step_vars = self.parse_losses(losses)
                optim_wrapper.backward(parsed)
            for name, value in step_vars.items():
                if name in fresh['losses']:  # local losses: sum the weighted parts
                    log_vars[name] = log_vars.get(name, 0) + value
                else:
                    log_vars[name] = value
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        # 'loss' in step_vars is one pass's total; recompute it from the parts for the log.
        log_vars['loss'] = sum(value for name, value in log_vars.items()
                               if 'loss' in name and name != 'loss')
        return log_vars
