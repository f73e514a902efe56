"""mmpose ``TopdownPoseEstimator`` for FaRL's face alignment (farl_protocol.md §3.4, §4).

Two differences from mmpose's estimator, nothing else:

* **Input resize.** FaRL's feature extractor resizes the 512 warped canvas to the backbone's 448
  with ``F.interpolate(bilinear, align_corners=False)`` (after normalisation, which commutes with
  it): ``backbone_input_size``. The head's logits are then at stride 4 of 448 (112x112); the
  decoding works in normalised canvas coordinates, so the sizes need not match the canvas.
* **Predictions in original pixels.** ``FaceHeatmapHead`` already maps the decoded landmarks back
  to the original image through the sample's ``align_matrix``. mmpose's
  ``add_pred_to_datasample`` would map them *again* with ``input_center`` / ``input_scale``
  (which our pipelines do not even set), so it is overridden: ``pred_instances.keypoints``
  ``(1, K, 2)`` and ``keypoint_scores`` ``(1, K)`` are stored as decoded, plus
  ``keypoints_visible`` (= the scores, as mmpose does), ``bboxes`` / ``bbox_scores`` from
  ``gt_instances`` (the original-pixel face box) and ``output_keypoint_indices`` selection.

``freeze_backbone`` is FaRL's freeze-backbone recipe (§5.5): the backbone is not updated.
"""
from __future__ import annotations

from itertools import zip_longest
from typing import Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmpose.models.pose_estimators import TopdownPoseEstimator
from torch import Tensor

from faceanalysis.registry import MODELS

__all__ = ['FaceAlignmentEstimator']


def _size2(size: Union[None, int, Sequence[int]]) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'expected (H, W), got {size}')
    return size


@MODELS.register_module()
class FaceAlignmentEstimator(TopdownPoseEstimator):
    """``TopdownPoseEstimator`` with FaRL's input resize and original-pixel predictions.

    Args:
        backbone_input_size: ``(H, W)`` the canvas is resized to before the backbone (448 for
            FaRL's 512 canvas); ``None`` feeds the canvas as it is.
        freeze_backbone: keep the backbone fixed (``requires_grad=False``; MMEngine's optimizer
            skips it).
        **kwargs: :class:`mmpose.models.TopdownPoseEstimator` arguments (``backbone``, ``neck``,
            ``head`` (a ``FaceHeatmapHead``), ``data_preprocessor``, ``train_cfg``,
            ``test_cfg``, ``init_cfg``, ``metainfo``).
    """

    def __init__(self, *args, backbone_input_size: Union[None, int, Sequence[int]] = None,
                 freeze_backbone: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backbone_input_size = _size2(backbone_input_size)
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor]:
        """Resize the canvas to ``backbone_input_size`` (FaRL: 512 -> 448), backbone, neck."""
        size = self.backbone_input_size
        if size is not None and tuple(inputs.shape[-2:]) != size:
            inputs = F.interpolate(inputs, size=size, mode='bilinear', align_corners=False)
        return super().extract_feat(inputs)

    def add_pred_to_datasample(self, batch_pred_instances, batch_pred_fields,
                               batch_data_samples):
        """Store the head's original-pixel predictions without mmpose's input-space mapping."""
        if len(batch_pred_instances) != len(batch_data_samples):
            raise ValueError(f'{len(batch_pred_instances)} predictions for '
                             f'{len(batch_data_samples)} data samples')
        if batch_pred_fields is None:
            batch_pred_fields = []
        indices = self.test_cfg.get('output_keypoint_indices', None)

        for pred_instances, pred_fields, data_sample in zip_longest(
                batch_pred_instances, batch_pred_fields, batch_data_samples):
            if 'keypoints_visible' not in pred_instances:
                pred_instances.keypoints_visible = pred_instances.keypoint_scores
            if indices is not None:
                for key, value in pred_instances.all_items():
                    if key.startswith('keypoint'):
                        pred_instances.set_field(value[:, indices], key)
            gt_instances = data_sample.get('gt_instances')
            if gt_instances is not None and 'bboxes' in gt_instances:
                pred_instances.bboxes = gt_instances.bboxes
                if 'bbox_scores' in gt_instances:
                    pred_instances.bbox_scores = gt_instances.bbox_scores
            data_sample.pred_instances = pred_instances
            if pred_fields is not None:
                if indices is not None:
                    for key, value in pred_fields.all_items():
                        pred_fields.set_field(value[indices], key)
                data_sample.pred_fields = pred_fields
        return batch_data_samples
