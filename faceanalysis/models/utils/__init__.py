"""Model-side helpers shared by heads (no registered modules)."""
from .heatmap import (denormalize_points, heatmap_scores, heatmap_targets, normalize_points,
                      render_truncated_gaussians, soft_argmax)

__all__ = ['normalize_points', 'denormalize_points', 'render_truncated_gaussians',
           'heatmap_targets', 'soft_argmax', 'heatmap_scores']
