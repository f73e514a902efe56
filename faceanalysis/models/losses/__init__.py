"""Pre-training losses (registered in MODELS)."""
from .adaptive_clip_loss import (AdaptiveClipLoss, ConsistencyGates, GateWeights, pair_cosine,
                                 per_sample_clip_losses)
from .clip_loss import ClipContrastiveLoss, gather_features
from .feature_distill_loss import FeatureDistillLoss
from .moco_v3_loss import MoCoV3Loss, gather_keys_without_grad

__all__ = ['ClipContrastiveLoss', 'gather_features',
           'FeatureDistillLoss', 'MoCoV3Loss', 'gather_keys_without_grad', 'AdaptiveClipLoss', 'ConsistencyGates', 'GateWeights',
           'pair_cosine', 'per_sample_clip_losses']
