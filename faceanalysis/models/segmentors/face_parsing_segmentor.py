"""FaRL's face-parsing network as an mmseg ``EncoderDecoder`` (farl_protocol.md §2, §3.4).

The samples come from the FaRL pipeline (``FaceAlignMatrix`` -> ``TanhWarp`` -> ``PackSegInputs``
with ``PARSING_META_KEYS``): the network sees the warped canvas (512x512 in FaRL) and the
metainfo carries ``align_matrix`` / ``warp_factor`` / ``warped_shape`` / ``align_src_shape``.

* **Input resize.** FaRL's feature extractor resizes the 512 canvas to the backbone's 448 with
  ``F.interpolate(bilinear, align_corners=False)`` (no antialias) before normalising; the
  normalisation is per-channel affine, so resizing after ``SegDataPreProcessor`` is the same
  thing. ``backbone_input_size`` does that here (``None`` feeds the canvas as it is).
* **Loss.** Cross entropy on the decode logits upsampled bilinearly (``align_corners=False``)
  to the *warped canvas* (``img_shape``), against the warped label: FaRL's ``F.cross_entropy``
  at 512x512 with a plain mean. mmseg's decode head would upsample to the label size, which is
  the same size for warped labels; it is done explicitly here, and a label of another size
  (e.g. an unwarped one) is an error instead of a silent resize. The loss itself is the decode
  head's ``loss_decode`` (``CrossEntropyLoss(avg_non_ignore=False)``: sum over pixels / number of
  pixels, FaRL's mean; ``ignore_index=255`` never occurs in warped labels, whose outside area is
  background 0).
* **Prediction.** Logits at the warped size; for a sample flipped by the pipeline
  (``RandomFlip`` after ``TanhWarp``) they are flipped back and the left/right channels are
  swapped (``swap_pairs``); then mapped onto the original image with
  :func:`faceanalysis.geometry.inverse_warp_logits` (FaRL's ``cv2.remap`` of raw logits, border
  0) and only then argmax-ed. ``pred_sem_seg`` and ``seg_logits`` are in the frame of
  ``align_src_shape`` (the image the matrix applies to: the original image for LaPa, the 512
  resized image for CelebAMask-HQ, whose labels are 512). Samples without ``align_matrix`` get
  mmseg's behaviour (resize to ``ori_shape``).
* **Flip test-time augmentation** (``flip_test=True``, not in FaRL): the canvas and its mirror
  image go through the network; the mirror view's logits are flipped back with the left/right
  channels swapped (mmseg's own flip TTA forgets the swap, shared/docs/stack.md P13), the two
  softmaxes are averaged on the canvas and that probability map is mapped back and argmax-ed.
  ``seg_logits`` then holds probabilities. A switch in the segmentor rather than an mmseg
  ``SegTTAModel`` + ``TestTimeAug`` pipeline: a pipeline flip would also mirror the
  original-resolution ground truth that the metric reads, and the API (``FaceParser``) gets the
  TTA with the same model.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.utils import add_prefix
from torch import Tensor

from faceanalysis.geometry import inverse_warp_logits
from faceanalysis.registry import MODELS

__all__ = ['FaceParsingSegmentor', 'swap_permutation']


def _size2(size: Union[None, int, Sequence[int]]) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'expected (H, W), got {size}')
    return size


def swap_permutation(num_classes: int, swap_pairs: Sequence[Sequence[int]]) -> List[int]:
    """Channel order that exchanges each ``(left, right)`` pair: ``logits[:, perm]``.

    Raises:
        ValueError: a class outside ``0..num_classes-1`` or one listed twice.
    """
    perm = list(range(num_classes))
    seen = set()
    for pair in swap_pairs:
        a, b = (int(v) for v in pair)
        for c in (a, b):
            if not 0 <= c < num_classes:
                raise ValueError(f'swap pair {tuple(pair)} names class {c}, outside '
                                 f'0..{num_classes - 1}')
            if c in seen:
                raise ValueError(f'class {c} appears in two swap pairs: {list(swap_pairs)}')
            seen.add(c)
        perm[a], perm[b] = b, a
    return perm


@MODELS.register_module()
class FaceParsingSegmentor(EncoderDecoder):
    """mmseg ``EncoderDecoder`` with FaRL's input resize, loss size and inverse-warped prediction.

    Args:
        backbone_input_size: ``(H, W)`` the canvas is resized to before the backbone (448 for
            FaRL's 512 canvas); ``None`` keeps the canvas size.
        swap_pairs: left/right class pairs, swapped when un-flipping a prediction (LaPa
            ``[(2, 3), (4, 5)]``, CelebAMask-HQ in FaRL's order ``[(4, 5), (6, 7), (8, 9)]``).
        flip_test: average the softmax of the canvas and of its mirror image (channels swapped)
            at test time.
        freeze_backbone: FaRL's ``freeze_backbone`` recipe (farl_protocol.md §5.5): the backbone
            is never updated, only the neck and the head are trained. FaRL leaves the backbone
            out of the optimizer but still back-propagates through it; here its parameters get
            ``requires_grad=False`` (MMEngine's optimizer then skips them), which gives the same
            weights without computing the backbone's gradients.
        **kwargs: :class:`mmseg.models.EncoderDecoder` arguments (``backbone``, ``neck``,
            ``decode_head``, ``data_preprocessor``, ``train_cfg``, ``test_cfg`` ...).
    """

    def __init__(self, *args, backbone_input_size: Union[None, int, Sequence[int]] = None,
                 swap_pairs: Sequence[Sequence[int]] = (), flip_test: bool = False,
                 freeze_backbone: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backbone_input_size = _size2(backbone_input_size)
        self.swap_pairs = [tuple(int(v) for v in pair) for pair in swap_pairs]
        self.flip_test = bool(flip_test)
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
        self._swap_perm = swap_permutation(self.num_classes, self.swap_pairs)
        if self.out_channels == 1:
            raise ValueError('FaceParsingSegmentor needs a softmax head (num_classes > 1)')

    # ------------------------------------------------------------------ features
    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Resize the canvas to ``backbone_input_size`` (FaRL: 512 -> 448), backbone, neck."""
        size = self.backbone_input_size
        if size is not None and tuple(inputs.shape[-2:]) != size:
            inputs = F.interpolate(inputs, size=size, mode='bilinear', align_corners=False)
        x = self.backbone(inputs)
        if self.with_neck:
            x = self.neck(x)
        return x

    # ------------------------------------------------------------------ training
    @staticmethod
    def _canvas_size(meta: dict) -> Tuple[int, int]:
        """The (padded) canvas size the logits are brought to: ``pad_shape`` or ``img_shape``."""
        shape = meta.get('pad_shape', meta['img_shape'])
        return tuple(int(s) for s in shape[:2])

    def _decode_head_forward_train(self, inputs: List[Tensor], data_samples) -> dict:
        """Cross entropy on the head's logits upsampled to the warped canvas (FaRL §2.2)."""
        size = self._canvas_size(data_samples[0].metainfo)
        for sample in data_samples:
            label_size = tuple(sample.gt_sem_seg.shape[-2:])
            if label_size != size:
                raise ValueError(
                    f'FaceParsingSegmentor trains on labels of the warped canvas {size}, got a '
                    f'label of size {label_size} ({sample.metainfo.get("img_path", "?")}); use '
                    'TanhWarp(warp_label=True) in the training pipeline')
        seg_logits = self.decode_head.forward(inputs)
        seg_logits = resize(seg_logits, size=size, mode='bilinear', align_corners=False)
        losses = self.decode_head.loss_by_feat(seg_logits, data_samples)
        return add_prefix(losses, 'decode')

    # ------------------------------------------------------------------ inference
    def swap_channels(self, seg_logits: Tensor) -> Tensor:
        """Exchange the left/right channels of ``(B, C, H, W)`` (or ``(C, H, W)``) logits."""
        if not self.swap_pairs:
            return seg_logits
        index = torch.as_tensor(self._swap_perm, device=seg_logits.device)
        return seg_logits.index_select(-3, index)

    def inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Logits on the canvas (``whole`` or ``slide``), averaged with the mirror view if
        ``flip_test`` (then softmax probabilities)."""
        mode = self.test_cfg.get('mode', 'whole')
        if mode not in ('whole', 'slide'):
            raise ValueError(f'test_cfg.mode must be "whole" or "slide", got {mode!r}')
        run = self.slide_inference if mode == 'slide' else self.whole_inference
        seg_logits = run(inputs, batch_img_metas)
        if not self.flip_test:
            return seg_logits
        mirrored = run(inputs.flip(-1), batch_img_metas)
        mirrored = self.swap_channels(mirrored.flip(-1))
        return (seg_logits.softmax(dim=1) + mirrored.softmax(dim=1)) / 2

    def postprocess_result(self, seg_logits: Tensor, data_samples=None):
        """Un-flip (with the left/right swap), inverse-warp to the image, then argmax."""
        if data_samples is None:
            return super().postprocess_result(seg_logits, data_samples)
        _, _, height, width = seg_logits.shape
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            left, right, top, bottom = meta.get('img_padding_size',
                                                meta.get('padding_size', [0] * 4))
            logits = seg_logits[i:i + 1, :, top:height - bottom, left:width - right]
            if meta.get('flip', False):
                direction = meta.get('flip_direction', 'horizontal')
                if direction == 'horizontal':
                    logits = self.swap_channels(logits.flip(-1))
                elif direction == 'vertical':
                    logits = logits.flip(-2)
                else:
                    raise ValueError(f'unknown flip_direction {direction!r}')
            if meta.get('align_matrix') is not None:
                out_shape = meta.get('align_src_shape', meta['ori_shape'])
                warped_shape = meta.get('warped_shape', tuple(logits.shape[-2:]))
                logits = inverse_warp_logits(logits, meta['align_matrix'],
                                             float(meta.get('warp_factor', 0.0)),
                                             tuple(out_shape[:2]), warped_shape=warped_shape)
            else:
                logits = resize(logits, size=tuple(meta['ori_shape'][:2]), mode='bilinear',
                                align_corners=self.align_corners, warning=False)
            logits = logits[0]
            sample.set_data({
                'seg_logits': PixelData(data=logits),
                'pred_sem_seg': PixelData(data=logits.argmax(dim=0, keepdim=True)),
            })
        return data_samples
