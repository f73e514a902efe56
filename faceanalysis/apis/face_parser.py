"""Face parsing of one image with a trained parsing config + checkpoint.

    >>> from faceanalysis.apis import FaceParser
    >>> parser = FaceParser('configs/parsing/lapa_farl.py', 'work_dirs/lapa_farl/best.pth')
    >>> label = parser.parse('face.jpg', landmarks5=[[x, y], ...])   # (H, W) uint8, image frame
    >>> label = parser.parse(image_bgr, box=(x1, y1, x2, y2))

The image goes through what the config's test pipeline does (shared/docs/farl_protocol.md §3.2,
§3.4): an alignment matrix onto the canvas, the RoI tanh-warp (``TanhWarp`` settings of the test
pipeline: canvas size, warp factor), the network, and the inverse warp of the logits to the
original image before the argmax. Only the source of the matrix differs:

* ``landmarks5``: 5 points (left eye, right eye, nose tip, left and right mouth corner; "left" is
  the image left) -> FaRL's similarity to its template, exactly as the LaPa pipeline does with
  the ground-truth points 104, 105, 54, 84, 90 of the 106 landmarks. Detector points
  (RetinaFace, MTCNN ...) come in this order.
* ``box``: a face box ``(x1, y1, x2, y2)`` in pixels -> a square crop around it
  (:func:`box_to_matrix`). FaRL's benchmarks never use boxes; the crop is scaled and shifted so
  that a typical detector box lands where FaRL's template puts the face (``box_scale``,
  ``box_shift``), which is only approximate: prefer landmarks.
* neither: the whole image resized onto the canvas (CelebAMask-HQ configs, whose pipeline uses
  the identity alignment); a landmarks-based config (LaPa) then raises.

Images are paths (read with OpenCV as BGR) or ``(H, W, 3)`` uint8 arrays in **BGR** order (the
OpenCV and mmcv convention; the model's preprocessor converts to RGB); pass
``channel_order='rgb'`` for RGB arrays (PIL, matplotlib). The checkpoint is what
``tools/train.py`` saves (its ``state_dict`` holds the EMA weights); the backbone's pre-trained
weights are not needed.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from faceanalysis.geometry import (crop_resize_matrix, face_align_matrix, resize_matrix,
                                   warp_image)

__all__ = ['FaceParser', 'box_to_matrix', 'init_face_parser']

ImageLike = Union[str, os.PathLike, np.ndarray]

#: Side of the square crop around a face box, in box sizes (max of width and height), and the
#: upward shift of its centre in box sizes. With them a face box spanning brows to chin and
#: cheek to cheek falls about where FaRL's 5-point template puts the face on the canvas
#: (eyes at 44% of the canvas height, interocular distance 23% of its width).
BOX_SCALE = 1.8
BOX_SHIFT = 0.15


def box_to_matrix(box: Sequence[float], warped_shape: Union[int, Sequence[int]] = (512, 512),
                  box_scale: float = BOX_SCALE, box_shift: float = BOX_SHIFT) -> np.ndarray:
    """Matrix image -> canvas of a square crop around a face box.

    Args:
        box: ``(x1, y1, x2, y2)`` edges of the face box in image pixels.
        warped_shape: canvas ``(H, W)``.
        box_scale: crop side = ``box_scale * max(x2 - x1, y2 - y1)``.
        box_shift: the crop centre is ``box_shift * max(w, h)`` above the box centre.

    Returns:
        3x3 float64 matrix (:func:`faceanalysis.geometry.crop_resize_matrix` of the crop).
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f'box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box}')
    size = max(x2 - x1, y2 - y1)
    half = box_scale * size / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - box_shift * size
    return crop_resize_matrix((cy - half, cx - half, cy + half, cx + half), warped_shape)


def _find(pipeline: Sequence[dict], name: str) -> Optional[dict]:
    for step in pipeline or []:
        if step.get('type') == name:
            return step
        for key in ('transforms', 'pipeline'):
            if isinstance(step.get(key), (list, tuple)):
                found = _find([s for s in step[key] if isinstance(s, dict)], name)
                if found is not None:
                    return found
    return None


def _pair(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    return int(value[0]), int(value[1])


class FaceParser:
    """A parsing model ready for single images (see the module docstring).

    Args:
        config: parsing config file (``configs/parsing/*.py``, the quickstart ...) or a loaded
            :class:`mmengine.config.Config`.
        checkpoint: trained weights (``tools/train.py`` output); ``None`` keeps random weights.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'`` ...
        cfg_options: overrides merged into the config (e.g. ``{'model.flip_test': True}``).

    Attributes:
        model: the :class:`~faceanalysis.models.FaceParsingSegmentor` (eval mode).
        classes, palette: class names and RGB colours (from the checkpoint's ``dataset_meta``,
            else the test dataset's ``METAINFO``).
        warped_shape, warp_factor, align_mode: the test pipeline's canvas settings.
    """

    def __init__(self, config: Any, checkpoint: Optional[str] = None, device: str = 'cpu',
                 cfg_options: Optional[dict] = None) -> None:
        import faceanalysis.datasets  # noqa: F401  (dataset METAINFO)
        import faceanalysis.models  # noqa: F401  (registers FaceParsingSegmentor, backbones)
        from mmengine.config import Config
        from mmengine.model import revert_sync_batchnorm
        from mmengine.registry import DefaultScope, init_default_scope
        from mmengine.runner import load_checkpoint

        cfg = Config.fromfile(os.fspath(config)) if isinstance(config, (str, os.PathLike)) \
            else copy.deepcopy(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        scope = cfg.get('default_scope', 'mmseg')
        if DefaultScope.get_current_instance() is None or \
                DefaultScope.get_current_instance().scope_name != scope:
            init_default_scope(scope)
        from mmseg.registry import DATASETS, MODELS

        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.pretrained = None
        if model_cfg.get('backbone') is not None:  # trained weights replace the pre-trained
            model_cfg.backbone.init_cfg = None
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
        meta = {}
        if checkpoint is not None:
            ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                                   revise_keys=[(r'^module\.', '')])
            meta = (ckpt.get('meta') or {}).get('dataset_meta') or {}
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.cfg = cfg

        test_dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        pipeline = test_dataset.get('pipeline') or []
        warp = _find(pipeline, 'TanhWarp')
        if warp is None:
            raise ValueError('FaceParser needs a parsing config whose test pipeline has TanhWarp '
                             '(configs/parsing/*.py)')
        align = _find(pipeline, 'FaceAlignMatrix') or {}
        self.warped_shape = _pair(warp.get('warped_shape', (512, 512)))
        self.warp_factor = float(warp.get('warp_factor', 0.8))
        self.align_mode = align.get('mode', 'landmarks')
        self.face_scale = float(align.get('face_scale', 1.0))

        dataset_cls = DATASETS.get(test_dataset.get('type')) if test_dataset.get('type') else None
        default_meta = dict(getattr(dataset_cls, 'METAINFO', {}) or {})
        default_meta.update(test_dataset.get('metainfo') or {})
        self.classes = tuple(meta.get('classes') or default_meta.get('classes') or ())
        self.palette = [tuple(c) for c in (meta.get('palette') or default_meta.get('palette')
                                          or [])]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def read_image(image: ImageLike, channel_order: str = 'bgr') -> np.ndarray:
        """``(H, W, 3)`` BGR uint8/float array of a path or an array in ``channel_order``."""
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        if isinstance(image, (str, os.PathLike)):
            import cv2
            path = os.fspath(image)
            array = cv2.imread(path, cv2.IMREAD_COLOR)
            if array is None:
                raise FileNotFoundError(f'cannot read image {path} (missing or not an image)')
            return array
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f'image must be (H, W, 3), got shape {array.shape}')
        array = array[..., :3]
        if channel_order == 'rgb':
            array = array[..., ::-1]
        return np.ascontiguousarray(array)

    def matrix_for(self, image_shape: Sequence[int], landmarks5: Optional[Any] = None,
                   box: Optional[Sequence[float]] = None) -> np.ndarray:
        """The image -> canvas matrix for ``landmarks5``, ``box`` or the whole image."""
        if landmarks5 is not None and box is not None:
            raise ValueError('give landmarks5 or box, not both')
        if landmarks5 is not None:
            points = np.asarray(landmarks5, dtype=np.float64).reshape(-1, 2)
            if points.shape != (5, 2):
                raise ValueError(f'landmarks5 must be 5 (x, y) points (left eye, right eye, '
                                 f'nose, left and right mouth corner), got {len(points)}')
            return face_align_matrix(points, self.warped_shape, self.face_scale)
        if box is not None:
            return box_to_matrix(box, self.warped_shape)
        if self.align_mode != 'identity':
            raise ValueError('this config aligns faces with landmarks: pass landmarks5 (5 points) '
                             'or a face box')
        return resize_matrix(tuple(image_shape[:2]), self.warped_shape)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def parse(self, image: ImageLike, landmarks5: Optional[Any] = None,
              box: Optional[Sequence[float]] = None, channel_order: str = 'bgr',
              return_logits: bool = False):
        """Label map of one face, in the original image's pixels.

        Args:
            image: path, or ``(H, W, 3)`` array (BGR unless ``channel_order='rgb'``).
            landmarks5: ``(5, 2)`` x, y points: left eye, right eye, nose tip, left and right
                mouth corners (image left/right).
            box: ``(x1, y1, x2, y2)`` face box, used when there are no landmarks.
            channel_order: ``'bgr'`` or ``'rgb'`` for array images.
            return_logits: also return the ``(C, H, W)`` float32 logits in the image frame
                (probabilities when the model runs with ``flip_test``).

        Returns:
            ``(H, W)`` uint8 class ids (``self.classes``); with ``return_logits`` a tuple
            ``(label, logits)``. Pixels whose canvas position falls outside the canvas are
            background (0), as in FaRL's evaluation.
        """
        from mmseg.structures import SegDataSample

        img = self.read_image(image, channel_order)
        matrix = self.matrix_for(img.shape, landmarks5, box)
        warped = warp_image(img.astype(np.float32), matrix, self.warped_shape, self.warp_factor,
                            'bilinear')
        inputs = torch.from_numpy(np.ascontiguousarray(warped.transpose(2, 0, 1)))
        sample = SegDataSample(metainfo=dict(
            img_shape=self.warped_shape, ori_shape=tuple(img.shape[:2]), align_matrix=matrix,
            warp_factor=self.warp_factor, warped_shape=self.warped_shape,
            align_src_shape=tuple(img.shape[:2])))
        result = self.model.test_step(dict(inputs=[inputs], data_samples=[sample]))[0]
        label = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        if return_logits:
            return label, result.seg_logits.data.float().cpu().numpy()
        return label

    __call__ = parse


def init_face_parser(config: Any, checkpoint: Optional[str] = None,
                     device: str = 'cpu') -> FaceParser:
    """``FaceParser(config, checkpoint, device)`` (mmseg's ``init_model`` naming)."""
    return FaceParser(config, checkpoint, device)
