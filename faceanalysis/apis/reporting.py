"""What ``tools/test.py`` writes after testing a face-alignment model (issue 4, item 7).

``tools/test.py`` is being extended with the parsing report by another change; the alignment
branch is this one function, to be called right after ``metrics = runner.test()``::

    if is_main_process() and find_alignment_metric(runner) is not None:   # alignment test
        write_alignment_outputs(runner, metrics, cfg, cfg.work_dir, show_dir=args.show_dir)

(and, for alignment configs (``default_scope == 'mmpose'``), ``--show-dir`` must not switch on
mmpose's ``PoseVisualizationHook`` in ``enable_visualization``: mmpose's visualiser crashes with
NumPy 2.4 in ``draw_circles``; this function draws with OpenCV instead.)

It writes

* ``report.md`` / ``report.json`` with every subset and metric, FaRL's published numbers beside
  ours, and one CED curve PNG per test subset (:func:`faceanalysis.evaluation.report.
  write_alignment_report` fed with :attr:`FaceAlignmentMetric.ced_curves`);
* with ``show_dir``: one PNG per test image with the ground-truth (green) and predicted (red)
  landmarks and the face box (blue), drawn with OpenCV in original image pixels. The
  predictions come from one more pass of ``runner.model`` over ``runner.test_dataloader``
  (the test loop does not keep them; in a distributed test, the calling rank's share).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Dict, Mapping, Optional

import numpy as np

__all__ = ['write_alignment_outputs', 'find_alignment_metric', 'draw_alignment',
           'alignment_report_target']

GT_COLOR = (0, 200, 0)      # BGR
PRED_COLOR = (0, 0, 255)
BOX_COLOR = (255, 128, 0)


def find_alignment_metric(runner) -> Optional[Any]:
    """The runner's test :class:`FaceAlignmentMetric` (after ``runner.test()``), or ``None``."""
    from faceanalysis.evaluation.metrics.face_alignment_metric import FaceAlignmentMetric
    evaluator = getattr(runner, 'test_evaluator', None)
    if evaluator is None or isinstance(evaluator, (dict, list)):
        evaluator = getattr(getattr(runner, 'test_loop', None), 'evaluator', None)
    for metric in getattr(evaluator, 'metrics', None) or ():
        if isinstance(metric, FaceAlignmentMetric):
            return metric
    return None


def alignment_report_target(cfg, metric=None) -> Dict[str, str]:
    """``dict(dataset=, recipe=)`` for the report: the config's ``paper_reference`` first, else
    the metric's / evaluator's ``dataset`` with recipe ``'farl-ep16'``."""
    ref = dict(cfg.get('paper_reference') or {})
    dataset = ref.get('dataset') or getattr(metric, '_dataset', None)
    if dataset is None:
        evaluator = cfg.get('test_evaluator') or {}
        evaluators = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
        dataset = next((e.get('dataset') for e in evaluators if e.get('dataset')), None)
    if dataset is None:
        raise ValueError('cannot tell the alignment dataset: set paper_reference=dict(dataset=, '
                         'recipe=) or FaceAlignmentMetric(dataset=...) in the config')
    return dict(dataset=str(dataset), recipe=str(ref.get('recipe', 'farl-ep16')))


def draw_alignment(image: np.ndarray, pred: Optional[np.ndarray] = None,
                   gt: Optional[np.ndarray] = None, box: Optional[np.ndarray] = None,
                   radius: Optional[int] = None) -> np.ndarray:
    """A copy of the BGR ``image`` with ``gt`` (green), ``pred`` (red) ((K, 2) x, y) and the
    ``box`` (x1, y1, x2, y2, blue) drawn with OpenCV."""
    import cv2
    canvas = np.ascontiguousarray(image).copy()
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    if radius is None:
        radius = max(1, int(round(max(canvas.shape[:2]) / 256)))
    if box is not None:
        x1, y1, x2, y2 = [int(round(float(v))) for v in np.asarray(box).reshape(-1)[:4]]
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, 1)
    for points, color in ((gt, GT_COLOR), (pred, PRED_COLOR)):
        if points is None:
            continue
        for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, color, -1,
                           cv2.LINE_AA)
    return canvas


def _value(sample: Any, key: str):
    meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
    if key in meta:
        return meta[key]
    return getattr(sample, key, None)


def _numpy(value) -> Optional[np.ndarray]:
    if value is None:
        return None
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def draw_test_predictions(runner, show_dir: str) -> int:
    """Run ``runner.model`` over ``runner.test_dataloader`` and write one drawing per sample to
    ``show_dir``; returns how many were written."""
    import cv2
    import torch

    os.makedirs(show_dir, exist_ok=True)
    model = runner.model
    for hook in getattr(runner, 'hooks', ()):
        # EMAHook swaps its averaged weights in for the test only: draw with those, the weights
        # the metrics were computed with
        ema = getattr(hook, 'ema_model', None) if type(hook).__name__ == 'EMAHook' else None
        if ema is not None:
            model = ema.module
    model.eval()
    written = 0
    with torch.no_grad():
        for data in runner.test_dataloader:
            for sample in model.test_step(data):
                path = _value(sample, 'img_path')
                image = cv2.imread(path, cv2.IMREAD_COLOR) if path else None
                if image is None:
                    continue
                pred = _numpy(sample.pred_instances.keypoints).reshape(-1, 2)
                gt = _value(sample, 'gt_keypoints')
                box = _value(sample, 'face_box')
                drawn = draw_alignment(image, pred, None if gt is None else _numpy(gt),
                                       None if box is None else _numpy(box))
                name = _value(sample, 'sample_name') or osp.splitext(osp.basename(path))[0]
                index = _value(sample, 'id')
                stem = f'{int(index):05d}_{name}' if index is not None else str(name)
                stem = stem.replace(os.sep, '_').replace(' ', '_')
                cv2.imwrite(osp.join(show_dir, f'{stem}.png'), drawn)
                written += 1
    return written


def write_alignment_outputs(runner, metrics: Mapping[str, Any], cfg, work_dir: str,
                            show_dir: Optional[str] = None) -> Dict[str, Any]:
    """Write the alignment report (and with ``show_dir`` the drawings) of a finished test.

    Args:
        runner: the ``Runner`` after ``runner.test()`` (its ``FaceAlignmentMetric`` holds the
            CED curves; its model and test dataloader serve the drawings).
        metrics: what ``runner.test()`` returned (x100 NME / AUC / FR per subset).
        cfg: the test config (``paper_reference``, ``load_from``, ``filename``).
        work_dir: where ``report.md``, ``report.json``, ``ced_<subset>.png`` and
            ``ced_curves.json`` go.
        show_dir: if set, one PNG per test image with GT and predicted landmarks.

    Returns ``dict(report_md=, report_json=, drawn=)``.
    """
    from faceanalysis.evaluation.report import write_alignment_report

    metric = find_alignment_metric(runner)
    target = alignment_report_target(cfg, metric)
    curves = getattr(metric, 'ced_curves', None) or None
    extra = dict(config=getattr(cfg, 'filename', None), checkpoint=cfg.get('load_from'))
    md, js = write_alignment_report(dict(metrics), target['dataset'], target['recipe'],
                                    work_dir, ced_curves=curves,
                                    extra={k: v for k, v in extra.items() if v is not None})
    drawn = draw_test_predictions(runner, show_dir) if show_dir else 0
    return dict(report_md=md, report_json=js, drawn=drawn)
