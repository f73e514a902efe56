"""FaRL's face-alignment head as an mmpose head (shared/docs/farl_protocol.md §3.4, §4.1, §4.2).

Network: an mmseg ``UPerHead`` (768 channels in FaRL, pool scales 1/2/3/6, Dropout2d 0.1) on the
four-scale neck, with one output channel per landmark: heatmap **logits** at stride 4 of the
backbone input (112x112 for FaRL's 448). Everything else is FaRL's task code:

* **decoding**: ``sigmoid`` -> soft-argmax over the whole map -> normalised point
  ``n = ((x + 0.5) / w, (y + 0.5) / h)`` in ``[0, 1]`` of the warped canvas
  (:mod:`faceanalysis.models.utils.heatmap`) -> warped-canvas pixels ``n * [W, H] - 0.5`` ->
  original image with :func:`faceanalysis.geometry.inverse_transform_points` and the sample's
  ``align_matrix`` / ``warp_factor`` / ``warped_shape`` metainfo (FaRL's
  ``TransformPoints2DInverted``). ``keypoint_scores`` are the maxima of the sigmoid maps.
* **loss** (``loss_weights`` 1:1 as FaRL): ``loss_heatmap`` = ``binary_cross_entropy_with_logits``
  of the logits upsampled bilinearly (``align_corners=False``) to ``heatmap_size`` (128) against
  truncated Gaussians (``R = 5``, ``sigma = R / 4``) rendered at ``q = n * 128 - 0.5``, mean over
  every element; ``loss_coord`` = Euclidean distance between predicted and GT normalised points,
  mean over landmarks and images (FaRL's ``coord_l1_loss``, an L2 norm despite the name). The
  GT comes from the warped landmarks ``gt_instances.transformed_keypoints`` (``TanhWarp`` writes
  them, ``PackPoseInputs(pack_transformed=True)`` packs them), normalised with the canvas size
  ``warped_shape``. Visibility flags are ignored (FaRL trains and scores every point).
  Monitoring values (no gradient, not summed into the loss because their names lack ``loss``):
  ``dist_px`` (mean landmark error in warped-canvas pixels) and, with ``nme_indices`` set (e.g.
  ``(36, 45)`` for 300W), ``nme_train`` (that error over the inter-ocular distance on the canvas;
  equal to the image-space NME for a similarity crop).

Why no mmpose codec: FaRL's targets are cheapest rendered on the fly in torch from the warped
points, and decoding to image pixels needs the per-sample matrix, which a codec's
``decode(keypoints)`` never sees. The rendering and soft-argmax live in
:mod:`faceanalysis.models.utils.heatmap`.

Predictions are already in original-image pixels, so the estimator must not apply mmpose's
``input_center`` / ``input_scale`` mapping: use
:class:`~faceanalysis.models.pose_estimators.FaceAlignmentEstimator`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads.base_head import BaseHead
from torch import Tensor

from faceanalysis.geometry import inverse_transform_points
from faceanalysis.registry import MODELS
from ..utils.heatmap import heatmap_scores, heatmap_targets, normalize_points, soft_argmax

__all__ = ['FaceHeatmapHead']


def _meta(sample) -> dict:
    return sample.metainfo if hasattr(sample, 'metainfo') else dict(sample)


def _hw(shape) -> Tuple[int, int]:
    if isinstance(shape, (int, np.integer)):
        return int(shape), int(shape)
    shape = tuple(int(s) for s in shape)
    return shape[0], shape[1]


def _to_tensor(value, ref: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(device=ref.device, dtype=ref.dtype)
    return torch.as_tensor(np.asarray(value, dtype=np.float32), device=ref.device,
                           dtype=ref.dtype)


@MODELS.register_module()
class FaceHeatmapHead(BaseHead):
    """UPerHead heatmap logits + FaRL's soft-argmax decoding and BCE + distance loss.

    Args:
        in_channels: channels of the four neck outputs (an int for all four, or a list).
        num_keypoints: landmarks ``K`` (68 300W, 98 WFLW, 19 AFLW-19).
        channels: UPerHead width (FaRL 768).
        in_index: which neck outputs the UPerHead uses.
        pool_scales: PPM scales.
        dropout_ratio: Dropout2d before the classifier (FaRL 0.1).
        norm_cfg: norm of the UPerHead ConvModules (FaRL ``SyncBN``; single-process runs revert
            it to BN).
        heatmap_size: side of the loss grid the logits are upsampled to (FaRL 128).
        heatmap_radius: ``R`` of the truncated Gaussian targets, pixels of that grid (FaRL 5).
        loss_weights: ``dict(heatmap=1.0, coord=1.0)`` (FaRL's ``heatmap_ce_loss`` and
            ``coord_l1_loss``); a zero weight skips that loss.
        nme_indices: two landmark ids whose distance normalises the ``nme_train`` monitor
            (inter-ocular: 300W ``(36, 45)``, WFLW ``(60, 72)``, AFLW-19 ``(6, 11)``).
        uper_init_cfg: ``init_cfg`` of the UPerHead; ``None`` keeps PyTorch's default init of
            the classifier as FaRL (mmseg would draw Normal(0, 0.01)).
        init_cfg: of this module.

    Not arguments (mmpose's ``check_and_update_config`` would rewrite them into a neck):
    ``align_corners`` (always False, as FaRL), ``input_transform``, ``input_index``.
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], num_keypoints: int,
                 channels: int = 768, in_index: Sequence[int] = (0, 1, 2, 3),
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout_ratio: float = 0.1,
                 norm_cfg: Optional[dict] = None, heatmap_size: int = 128,
                 heatmap_radius: float = 5.0,
                 loss_weights: Optional[Dict[str, float]] = None,
                 nme_indices: Optional[Sequence[int]] = None,
                 uper_init_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from mmseg.models.decode_heads import UPerHead

        in_index = [int(i) for i in in_index]
        if isinstance(in_channels, int):
            in_channels = [in_channels] * len(in_index)
        in_channels = [int(c) for c in in_channels]
        if len(in_channels) != len(in_index):
            raise ValueError(f'{len(in_channels)} in_channels for {len(in_index)} in_index')
        self.num_keypoints = int(num_keypoints)
        if self.num_keypoints < 1:
            raise ValueError(f'num_keypoints must be positive, got {num_keypoints}')
        self.heatmap_size = int(heatmap_size)
        self.heatmap_radius = float(heatmap_radius)
        weights = dict(heatmap=1.0, coord=1.0)
        unknown = set(loss_weights or {}) - set(weights)
        if unknown:
            raise KeyError(f'loss_weights keys must be among {sorted(weights)}, got '
                           f'{sorted(unknown)}')
        weights.update({k: float(v) for k, v in (loss_weights or {}).items()})
        self.loss_weights = weights
        self.nme_indices = None if nme_indices is None else tuple(int(i) for i in nme_indices)
        if self.nme_indices is not None and len(self.nme_indices) != 2:
            raise ValueError(f'nme_indices must name two landmarks, got {nme_indices}')
        self.decoder = None  # no mmpose codec: decode() needs the per-sample matrices

        # Build the mmseg head in mmseg's scope: its (unused) loss_decode and ConvModules resolve
        # there whatever the caller's default scope (mmpose's registry has no CrossEntropyLoss).
        with DefaultScope.overwrite_default_scope('mmseg'):
            self.uper_head = UPerHead(
                in_channels=in_channels, in_index=in_index, pool_scales=tuple(pool_scales),
                channels=int(channels), dropout_ratio=float(dropout_ratio),
                num_classes=self.num_keypoints, out_channels=self.num_keypoints,
                norm_cfg=norm_cfg or dict(type='BN', requires_grad=True), align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.0),
                init_cfg=uper_init_cfg)

    # ------------------------------------------------------------------ network
    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Neck features -> ``(B, K, h, w)`` heatmap logits (stride 4 of the backbone input)."""
        return self.uper_head(list(feats))

    @staticmethod
    def activate(logits: Tensor) -> Tensor:
        """FaRL's ``heatmap_act='sigmoid'``."""
        return logits.sigmoid()

    def normalized_points(self, logits: Tensor) -> Tensor:
        """``(B, K, 2)`` points in ``[0, 1]`` of the warped canvas (sigmoid + soft-argmax)."""
        return soft_argmax(self.activate(logits.float()))

    # ------------------------------------------------------------------ inference
    @staticmethod
    def _canvas_shape(meta: dict) -> Tuple[int, int]:
        shape = meta.get('warped_shape')
        if shape is None:
            shape = meta.get('img_shape')
        if shape is None:
            raise KeyError('FaceHeatmapHead needs warped_shape (or img_shape) in the metainfo; '
                           'pack it with PackPoseInputs(meta_keys=ALIGNMENT_WARP_META_KEYS)')
        return _hw(shape)

    def decode(self, batch_outputs: Tensor,
               batch_data_samples: Optional[Sequence] = None) -> List[InstanceData]:
        """Heatmap logits -> one ``InstanceData`` per image, landmarks in original pixels.

        ``keypoints`` ``(1, K, 2)`` float32: the soft-argmax point on the warped canvas
        (``n * [W, H] - 0.5``, ``W, H`` = ``warped_shape``) mapped back with
        :func:`~faceanalysis.geometry.inverse_transform_points` (``align_matrix``,
        ``warp_factor``). Samples without ``align_matrix`` keep canvas pixels; without data
        samples the points are normalised ``[0, 1]`` canvas coordinates. ``keypoint_scores``
        ``(1, K)``: maximum of each sigmoid map.
        """
        logits = batch_outputs
        heatmaps = self.activate(logits.detach().float())
        points = soft_argmax(heatmaps).double().cpu().numpy()  # (B, K, 2) normalised
        scores = heatmap_scores(heatmaps).cpu().numpy().astype(np.float32)
        if batch_data_samples is not None and len(batch_data_samples) != len(points):
            raise ValueError(f'{len(points)} heatmaps for {len(batch_data_samples)} data samples')
        results = []
        for i in range(len(points)):
            pts = points[i]
            if batch_data_samples is not None:
                pts = self.to_image_points(pts, _meta(batch_data_samples[i]))
            results.append(InstanceData(keypoints=pts[None].astype(np.float32),
                                        keypoint_scores=scores[i][None]))
        return results

    @classmethod
    def to_image_points(cls, normalized: np.ndarray, meta: dict) -> np.ndarray:
        """``(K, 2)`` normalised canvas points -> original-image pixels (float64).

        FaRL's test post-processing (§3.4): warped pixels ``n * [W, H] - 0.5`` with ``(H, W)`` =
        ``meta['warped_shape']`` (else ``img_shape``), then tanh inverse and ``M^-1``
        (:func:`~faceanalysis.geometry.inverse_transform_points`) with ``meta['align_matrix']``
        and ``meta['warp_factor']`` (0 if absent). Without ``align_matrix`` the canvas pixels are
        returned.
        """
        h, w = cls._canvas_shape(meta)
        pts = np.asarray(normalized, dtype=np.float64) * np.array([w, h], dtype=np.float64) - 0.5
        matrix = meta.get('align_matrix')
        if matrix is None:
            return pts
        return inverse_transform_points(pts, np.asarray(matrix, dtype=np.float64), (h, w),
                                        float(meta.get('warp_factor', 0.0)))

    def predict(self, feats: Sequence[Tensor], batch_data_samples: Sequence,
                test_cfg: Optional[dict] = None):
        """Decoded landmarks in original pixels; with ``test_cfg.output_heatmaps`` also the
        sigmoid maps (canvas frame, head resolution) as ``pred_fields.heatmaps``."""
        test_cfg = test_cfg or {}
        if test_cfg.get('flip_test', False):
            raise NotImplementedError('FaceHeatmapHead has no flip test (FaRL uses none); set '
                                      'test_cfg.flip_test=False')
        logits = self.forward(feats)
        preds = self.decode(logits, batch_data_samples)
        if test_cfg.get('output_heatmaps', False):
            heatmaps = self.activate(logits.detach())
            return preds, [PixelData(heatmaps=hm) for hm in heatmaps]
        return preds

    # ------------------------------------------------------------------ training
    def gt_normalized_points(self, batch_data_samples: Sequence, ref: Tensor) -> Tensor:
        """``(B, K, 2)`` GT normalised canvas points from ``gt_instances.transformed_keypoints``."""
        points = []
        for sample in batch_data_samples:
            gt = getattr(sample, 'gt_instances', None)
            value = None if gt is None else gt.get('transformed_keypoints')
            if value is None:
                raise KeyError(
                    'FaceHeatmapHead.loss needs gt_instances.transformed_keypoints (the warped '
                    'landmarks): put TanhWarp in the training pipeline and pack with '
                    'PackPoseInputs(pack_transformed=True)')
            kpts = _to_tensor(value, ref)[..., :2].reshape(-1, 2)
            if kpts.shape[0] != self.num_keypoints:
                raise ValueError(f'FaceHeatmapHead has {self.num_keypoints} keypoints, the sample '
                                 f'{_meta(sample).get("img_path", "?")} has {kpts.shape[0]}')
            points.append(normalize_points(kpts, self._canvas_shape(_meta(sample))))
        return torch.stack(points)

    def loss(self, feats: Sequence[Tensor], batch_data_samples: Sequence,
             train_cfg: Optional[dict] = None) -> Dict[str, Tensor]:
        logits = self.forward(feats)
        return self.loss_by_logits(logits, batch_data_samples)

    def loss_by_logits(self, logits: Tensor, batch_data_samples: Sequence) -> Dict[str, Tensor]:
        """FaRL's ``heatmap_ce_loss`` + ``coord_l1_loss`` (and monitors) from head logits."""
        logits = logits.float()
        gt = self.gt_normalized_points(batch_data_samples, logits)
        losses: Dict[str, Tensor] = {}
        pred = soft_argmax(self.activate(logits))
        dist = (pred - gt).norm(dim=-1)  # (B, K), fractions of the canvas
        if self.loss_weights['heatmap']:
            size = (self.heatmap_size, self.heatmap_size)
            upsampled = F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
            target = heatmap_targets(gt, size, self.heatmap_radius)
            losses['loss_heatmap'] = self.loss_weights['heatmap'] * \
                F.binary_cross_entropy_with_logits(upsampled, target)
        if self.loss_weights['coord']:
            losses['loss_coord'] = self.loss_weights['coord'] * dist.mean()
        with torch.no_grad():
            sizes = torch.stack([
                torch.tensor(self._canvas_shape(_meta(s))[::-1], dtype=logits.dtype)
                for s in batch_data_samples
            ]).to(logits.device)  # (B, 2) = (W, H)
            err_px = ((pred - gt) * sizes[:, None]).norm(dim=-1)  # (B, K)
            losses['dist_px'] = err_px.mean()
            if self.nme_indices is not None:
                a, b = self.nme_indices
                gt_px = gt * sizes[:, None]
                norm = (gt_px[:, a] - gt_px[:, b]).norm(dim=-1).clamp(min=1e-6)
                losses['nme_train'] = (err_px.mean(dim=1) / norm).mean()
        return losses
