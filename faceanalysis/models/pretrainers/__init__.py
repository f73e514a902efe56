"""Pre-training algorithms (MMEngine ``BaseModel`` s registered in MODELS)."""
from .clip_pretrainer import CLIPPretrainer, split_batch

__all__ = ['CLIPPretrainer', 'split_batch']
