"""Cumulative error distribution (CED) curves of face alignment, drawn to a PNG.

Uses Matplotlib's object API with the Agg canvas (no pyplot state, no display, thread-safe),
so it works on headless machines and inside training processes.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['plot_ced']

Curve = Union[Tuple[Sequence[float], Sequence[float]], Mapping[str, Any]]


def _curve(value: Curve) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(value, Mapping):
        xaxis, ced = value['xaxis'], value['ced']
    else:
        xaxis, ced = value
    xaxis = np.asarray(xaxis, dtype=np.float64).reshape(-1)
    ced = np.asarray(ced, dtype=np.float64).reshape(-1)
    if xaxis.shape != ced.shape or xaxis.size < 2:
        raise ValueError(f'a CED curve needs xaxis and ced of the same length >= 2, got '
                         f'{xaxis.shape} and {ced.shape}')
    return xaxis, ced


def plot_ced(curves: Mapping[str, Curve],
             path: str,
             threshold: Optional[float] = None,
             title: Optional[str] = None,
             xlabel: str = 'NME (%)',
             dpi: int = 120) -> str:
    """Draw CED curves into the PNG ``path`` and return the path.

    Args:
        curves: legend label -> ``(xaxis, ced)`` (NME as fractions, share of images in [0, 1]),
            or a dict with ``xaxis`` and ``ced`` (e.g. an entry of
            :attr:`FaceAlignmentMetric.ced_curves`; its ``auc``/``fr`` (x100) are added to the
            label when present).
        path: output ``.png`` file (its folder is created).
        threshold: the x limit (fraction), drawn as a dashed line; default the largest x.
        title: figure title.
        xlabel: x-axis label; x is drawn x100 (percent), as the NME tables.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError('plot_ced needs at least one curve')
    fig = Figure(figsize=(5.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x_max = 0.0
    for label, value in curves.items():
        xaxis, ced = _curve(value)
        x_max = max(x_max, float(xaxis[-1]))
        text = str(label)
        if isinstance(value, Mapping) and value.get('auc') is not None:
            text += f' (AUC {value["auc"]:.2f}'
            text += f', FR {value["fr"]:.2f})' if value.get('fr') is not None else ')'
        ax.plot(xaxis * 100, ced, label=text, linewidth=1.5)
    limit = float(threshold) if threshold is not None else x_max
    ax.axvline(limit * 100, color='0.5', linestyle='--', linewidth=0.8)
    ax.set_xlim(0, limit * 100)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('fraction of images')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower right', fontsize='small')
    if title:
        ax.set_title(title)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format='png', dpi=dpi)
    return path
