"""Face alignment inference: an image and a face box -> landmarks in original image pixels.

    >>> from faceanalysis.apis import FaceAligner
    >>> aligner = FaceAligner('configs/alignment/300w_farl.py',
    ...                       'work_dirs/300w_farl/best_nme_epoch_N.pth')
    >>> points = aligner.align('face.jpg', box=(x1, y1, x2, y2))    # (68, 2) float64 x, y

The config's *test* pipeline (``LoadImage`` -> ``FaceBoxCropMatrix`` -> ``TanhWarp`` ->
``PackPoseInputs``) builds the canvas exactly as evaluation does, and the
``FaceAlignmentEstimator`` maps its predictions back through the sample's ``align_matrix``, so the
returned landmarks are in the pixels of the image as given (OpenCV convention: pixel centres on
integers). The box is the dataset's GT box convention: HRNet's box for 300W / WFLW (the pipeline
then crops it at face scale 0.8), the file's box for AFLW-19 (scale 1.0); any detector box of a
similar extent works. The backbone's pre-training checkpoint is never loaded (``init_cfg`` is
dropped): all weights come from ``checkpoint``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

__all__ = ['FaceAligner']


class FaceAligner:
    """A trained face-alignment model ready for single-face inference.

    Args:
        config: a config file (``configs/alignment/*.py``) or an ``mmengine.Config``.
        checkpoint: a checkpoint written by ``tools/train.py`` (``{'state_dict': ...}``; with
            EMAHook its ``state_dict`` already holds the EMA weights) or ``None`` for the
            randomly initialised model (tests).
        device: torch device, e.g. ``'cpu'`` or ``'cuda:0'``.
    """

    def __init__(self, config, checkpoint: Optional[str], device: str = 'cpu') -> None:
        import faceanalysis.datasets  # noqa: F401  (registers the transforms)
        import faceanalysis.models  # noqa: F401
        from mmcv.transforms import Compose
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmengine.runner import load_checkpoint
        from mmpose.registry import MODELS

        cfg = Config.fromfile(config) if isinstance(config, str) else config.copy()
        self.cfg = cfg
        self.scope = cfg.get('default_scope', 'mmpose')
        cfg.model.backbone.init_cfg = None  # the weights come from `checkpoint`
        # SyncBN needs a process group only in training; plain BN is the same at inference
        with DefaultScope.overwrite_default_scope(self.scope):
            self.model = MODELS.build(_sync_bn_to_bn(cfg.model))
            if checkpoint is not None:
                load_checkpoint(self.model, checkpoint, map_location='cpu', strict=True,
                                revise_keys=[(r'^module\.', '')])
            self.model.to(device).eval()
            self.pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        self.device = torch.device(device)

    @property
    def num_keypoints(self) -> int:
        return int(self.model.head.num_keypoints)

    @torch.no_grad()
    def align(self, image: Union[str, np.ndarray], box: Sequence[float]) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            image: an image file path, or an ``H x W x 3`` uint8 array in **BGR** channel order
                (what ``cv2.imread`` returns; the model's data preprocessor converts to RGB).
            box: ``(x1, y1, x2, y2)`` face box in the image's pixels.

        Returns:
            ``(K, 2)`` float64 array of ``x, y`` in the original image's pixels.
        """
        from mmengine.dataset import pseudo_collate
        from mmengine.registry import DefaultScope

        box = np.asarray(box, dtype=np.float32).reshape(-1)
        if box.size != 4 or not np.all(np.isfinite(box)):
            raise ValueError(f'box must be 4 finite numbers (x1, y1, x2, y2), got {box.tolist()}')
        if not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f'box must have x2 > x1 and y2 > y1, got {box.tolist()}')
        if isinstance(image, str):
            sample = dict(img_path=image)
        else:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'image must be an H x W x 3 BGR array, got shape {image.shape}')
            sample = dict(img=image, img_path=None)
        sample.update(face_box=box[None], bbox=box[None], bbox_score=np.ones(1, np.float32))
        with DefaultScope.overwrite_default_scope(self.scope):
            data = pseudo_collate([self.pipeline(sample)])
            (result, ) = self.model.test_step(data)
        points = np.asarray(result.pred_instances.keypoints, dtype=np.float64)
        return points.reshape(-1, 2)


def _sync_bn_to_bn(cfg):
    """A copy of a model config with every ``SyncBN`` norm turned into ``BN``."""
    if isinstance(cfg, dict):
        out = type(cfg)() if not hasattr(cfg, 'to_dict') else {}
        for key, value in cfg.items():
            if key == 'type' and value == 'SyncBN':
                value = 'BN'
            out[key] = _sync_bn_to_bn(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_sync_bn_to_bn(v) for v in cfg)
    return cfg
