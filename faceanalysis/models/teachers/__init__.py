"""Frozen teacher networks (MCF's feature loss, FaRL's MIM targets)."""
from .frozen_vit import MOCO_V3_VIT_SWITCHES, FrozenViTTeacher

__all__ = ['MOCO_V3_VIT_SWITCHES', 'FrozenViTTeacher']
