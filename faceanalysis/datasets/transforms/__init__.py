"""mmseg/mmpose pipeline transforms of faceanalysis.

They are registered in ``faceanalysis.registry.TRANSFORMS``, which mirrors them into mmseg's and
mmpose's registries, so configs write ``type='TanhWarp'`` in either scope.
"""
from .alignment import (ALIGNMENT_WARP_META_KEYS, WARP_META_KEYS, FaceBoxCropMatrix, NoiseFusion,
                        RandomFaceFlip, RandomOcclusion)
from .mim_mask import BlockwiseMaskGenerator, MaskBlock, blockwise_mask
from .photometric import RandomBoxBlur, RandomGamma, RandomGray
from .warping import PARSING_META_KEYS, FaceAlignMatrix, RandomFaceAffine, TanhWarp

__all__ = [
    'FaceAlignMatrix', 'RandomFaceAffine', 'TanhWarp', 'RandomGray', 'RandomGamma',
    'RandomBoxBlur', 'PARSING_META_KEYS', 'FaceBoxCropMatrix', 'RandomOcclusion', 'NoiseFusion',
    'RandomFaceFlip', 'ALIGNMENT_WARP_META_KEYS', 'WARP_META_KEYS', 'BlockwiseMaskGenerator',
    'MaskBlock', 'blockwise_mask'
]
