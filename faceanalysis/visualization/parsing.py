"""Face-parsing drawings: image | ground truth | prediction panels, and a test hook writing them.

:func:`draw_parsing_overlay` is plain numpy/OpenCV (no MMEngine state): ``tools/test.py
--show-dir`` uses it through :class:`ParsingVisualizationHook`, ``demo/face_parsing_demo.py``
directly. Images are BGR (OpenCV's order, as ``mmcv.imread`` returns them); palettes are RGB
triplets per class, as in mmseg's ``METAINFO['palette']``.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook

from faceanalysis.registry import HOOKS

__all__ = ['colorize_label', 'draw_parsing_overlay', 'ParsingVisualizationHook']


def colorize_label(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """``(H, W)`` class ids -> ``(H, W, 3)`` uint8 **BGR** colours from an RGB ``palette``.

    Values outside the palette (e.g. an ignore index 255) are drawn black.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'label must be (H, W), got shape {label.shape}')
    lut = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.int64).reshape(-1, 3)[:, ::-1]  # RGB -> BGR
    lut[:min(len(colours), 256)] = np.clip(colours[:256], 0, 255)
    ids = np.clip(label.astype(np.int64), 0, 255)
    inside = label.astype(np.int64) < len(colours)
    out = lut[ids]
    out[~inside] = 0
    return out


def _blend(image: np.ndarray, label: np.ndarray, palette, alpha: float) -> np.ndarray:
    colours = colorize_label(label, palette).astype(np.float32)
    mixed = image.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _caption(panel: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` (white on a black box) in the top-left corner of a wide enough panel."""
    height, width = panel.shape[:2]
    if width < 64 or height < 32:
        return panel
    scale = max(0.35, min(1.0, width / 400))
    thickness = 1 if scale < 0.7 else 2
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale,
                                                 thickness)
    cv2.rectangle(panel, (0, 0), (min(width - 1, text_w + 5), text_h + baseline + 4), (0, 0, 0),
                  thickness=-1)
    cv2.putText(panel, text, (3, text_h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return panel


def draw_parsing_overlay(image: np.ndarray, gt: Optional[np.ndarray], pred: np.ndarray,
                         palette: Sequence[Sequence[int]], alpha: float = 0.5,
                         captions: bool = True) -> np.ndarray:
    """Side-by-side panels: image | ground truth over the image | prediction over the image.

    Args:
        image: ``(H, W, 3)`` uint8 BGR image (``(H, W)`` gray is accepted). If its size differs
            from the label maps (CelebAMask-HQ: 1024 images, 512 labels) it is resized to them.
        gt: ``(H, W)`` ground-truth class ids, or ``None`` (the panel is left out).
        pred: ``(H, W)`` predicted class ids, in the same (original-image) frame as ``gt``.
        palette: RGB colour per class id.
        alpha: weight of the class colours over the image.
        captions: write "image", "ground truth", "prediction" on the panels.

    Returns:
        ``(H, k * W, 3)`` uint8 BGR array (``k`` = 3, or 2 without ``gt``), ready for
        ``cv2.imwrite``.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f'pred must be (H, W), got shape {pred.shape}')
    if gt is not None:
        gt = np.asarray(gt)
        if gt.shape != pred.shape:
            raise ValueError(f'gt {gt.shape} and pred {pred.shape} must have the same shape')
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f'image must be (H, W, 3), got shape {image.shape}')
    image = np.ascontiguousarray(image[..., :3])
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float32)), 0, 255).astype(np.uint8)
    if image.shape[:2] != pred.shape:
        image = cv2.resize(image, (pred.shape[1], pred.shape[0]), interpolation=cv2.INTER_AREA)

    panels = [(image.copy(), 'image')]
    if gt is not None:
        panels.append((_blend(image, gt, palette, alpha), 'ground truth'))
    panels.append((_blend(image, pred, palette, alpha), 'prediction'))
    if captions:
        panels = [(_caption(panel, text), text) for panel, text in panels]
    return np.concatenate([panel for panel, _ in panels], axis=1)


@HOOKS.register_module()
class ParsingVisualizationHook(Hook):
    """Write :func:`draw_parsing_overlay` panels of every ``interval``-th test sample.

    ``tools/test.py --show-dir DIR`` adds it for configs evaluated by ``FaceParsingMetric``.
    Predictions and ground truth are taken from the data samples (original-image space, as
    :class:`~faceanalysis.models.FaceParsingSegmentor` returns them), the image is re-read from
    ``img_path`` and the palette comes from the test dataset's metainfo.

    Args:
        out_dir: folder of the PNGs, named after the images (``<stem>.png``).
        interval: draw one test batch in ``interval``.
        alpha: colour weight of the overlays.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, interval: int = 1, alpha: float = 0.5) -> None:
        self.out_dir = out_dir
        self.interval = max(1, int(interval))
        self.alpha = float(alpha)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs or batch_idx % self.interval:
            return
        import mmcv
        dataset = runner.test_dataloader.dataset
        palette = dataset.metainfo.get('palette')
        os.makedirs(self.out_dir, exist_ok=True)
        for sample in outputs:
            pred = sample.pred_sem_seg.data[0].cpu().numpy()
            if palette is None:
                raise ValueError('ParsingVisualizationHook needs a palette in the test dataset '
                                 'metainfo')
            gt = sample.gt_sem_seg.data[0].cpu().numpy() if 'gt_sem_seg' in sample else None
            image = mmcv.imread(sample.img_path, channel_order='bgr')
            panel = draw_parsing_overlay(image, gt, pred, palette, self.alpha)
            stem = osp.splitext(osp.basename(sample.img_path))[0]
            cv2.imwrite(osp.join(self.out_dir, f'{stem}.png'), panel)
