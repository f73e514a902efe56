"""Visualisation helpers of faceanalysis (plots written with Matplotlib's Agg canvas)."""
from .ced import plot_ced

__all__ = ['plot_ced']
