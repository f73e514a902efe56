"""Visualisation helpers of faceanalysis (plots written with Matplotlib's Agg canvas)."""
from .ced import plot_ced
from .parsing import ParsingVisualizationHook, colorize_label, draw_parsing_overlay  # noqa: F401

__all__ = ['plot_ced']
