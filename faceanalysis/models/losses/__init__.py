"""Pre-training losses (registered in MODELS)."""
from .clip_loss import ClipContrastiveLoss, distributed_rank_world, gather_features

__all__ = ['ClipContrastiveLoss', 'distributed_rank_world', 'gather_features']
