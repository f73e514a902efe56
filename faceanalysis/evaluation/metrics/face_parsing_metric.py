"""Face-parsing F1 from one dataset-level confusion matrix (FaRL's protocol).

FaRL (shared/docs/farl_protocol.md §7.1) scores parsing with a single confusion matrix
``hist[gt, pred]`` summed over every pixel of the test set, in original-image space, with

    F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) = 2 hist[c, c] / (hist[c, :].sum() + hist[:, c].sum())

and reports the mean over the non-background classes (10 for LaPa, 18 for CelebAMask-HQ). There is
no per-image averaging, so large images weigh more. mmseg's ``IoUMetric(mFscore)`` differs in three
ways (shared/docs/stack.md P14): its means include background, ``nanmean`` drops a class that is
present but never predicted (its precision is 0/0), and the per-class values are only printed.

Decisions (documented here once; the tests pin them):

* **Present but never predicted**: F1 = 0 and IoU = 0, and the class counts in the means.
* **Absent** (no ground-truth pixel and no predicted pixel, so F1 = 0/0): controlled by
  ``absent_classes``. The default ``'exclude'`` reports NaN for the class and leaves it out of the
  means (with a warning naming it). FaRL divides anyway (``'nan'``), which makes its mean NaN, so
  wherever FaRL's mean is a number ours is the same number; ``'exclude'`` only keeps tiny subsets
  (and ``save_best``) usable. ``'zero'`` counts the class as 0.
* **mIoU** is the mean IoU over *all* classes, background included, as mmseg reports it, so it is
  comparable with mmseg logs and most segmentation tables. FaRL reports no IoU; the headline stays
  ``mean_f1`` (foreground). Absent classes follow ``absent_classes`` as for F1.
* **ignore_index**: pixels whose ground truth is ``ignore_index`` are excluded. A *prediction*
  equal to ``ignore_index`` at a scored pixel ("no prediction", which argmax never produces) counts
  as a miss of the ground-truth class (a false negative, no false positive) instead of being
  excluded, so that abstaining cannot raise the score. The confusion matrix stays ``(C, C)``; those
  pixels are kept in :attr:`FaceParsingMetric.last_unpredicted`.
* All values are percentages (x100), as FaRL's logs and tables.

Distributed evaluation: :meth:`process` appends one ``(C, C + 1)`` int64 count matrix *per
sample* (the last column holds the "no prediction" pixels). MMEngine's ``BaseMetric.evaluate``
gathers ``self.results`` from every rank in dataset order and drops the samples the sampler padded
with, which is only right when there is exactly one entry per sample; the sum of integer counts is
then exact and independent of the number of ranks.
"""
from __future__ import annotations

import logging
import math
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from faceanalysis.registry import METRICS

__all__ = ['FaceParsingMetric', 'confusion_matrix_metrics', 'ABSENT_CLASS_MODES']

#: how a class with neither ground-truth nor predicted pixels enters the results
ABSENT_CLASS_MODES = ('exclude', 'nan', 'zero')


def _ratio(numerator: np.ndarray, denominator: np.ndarray, absent: str) -> np.ndarray:
    """``100 * numerator / denominator``; ``denominator == 0`` marks an absent class."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(numerator.shape, 0.0 if absent == 'zero' else np.nan)
    present = denominator > 0
    out[present] = 100.0 * numerator[present] / denominator[present]
    return out


def _mean(values: np.ndarray, absent: str) -> float:
    """Mean where ``'exclude'`` skips the NaN of absent classes and the other modes do not."""
    values = np.asarray(values, dtype=np.float64)
    if absent == 'exclude':
        values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _f1_iou(tp: np.ndarray, gt_total: np.ndarray, pred_total: np.ndarray,
            absent: str) -> tuple:
    """F1 = 2TP / (GT + PRED) and IoU = TP / (GT + PRED - TP), both x100."""
    tp = np.asarray(tp, dtype=np.int64)
    both = np.asarray(gt_total, dtype=np.int64) + np.asarray(pred_total, dtype=np.int64)
    return _ratio(2 * tp, both, absent), _ratio(tp, both - tp, absent)


def confusion_matrix_metrics(hist: np.ndarray,
                             class_names: Sequence[str],
                             background_index: Optional[int] = 0,
                             groups: Optional[Mapping[str, Sequence[str]]] = None,
                             absent_classes: str = 'exclude',
                             unpredicted: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Face-parsing metrics of a summed confusion matrix ``hist[gt, pred]``.

    Args:
        hist: ``(C, C)`` integer pixel counts, rows ground truth, columns prediction.
        class_names: the ``C`` class names, in label-value order.
        background_index: the class left out of ``mean_f1``; ``None`` averages every class.
        groups: merged classes, ``{name: [class names]}``; each group is scored as one class of the
            matrix in which its members are merged (F1 and IoU only, not in the means).
        absent_classes: one of :data:`ABSENT_CLASS_MODES` (see the module docstring).
        unpredicted: ``(C,)`` pixels of each ground-truth class with no prediction (misses).

    Returns:
        ``mean_f1`` (foreground mean F1, the headline), ``mIoU`` (all classes), ``aAcc``, then
        ``f1/<class>`` and ``iou/<class>`` for every class and ``f1_group/<name>``,
        ``iou_group/<name>`` for every group; all in percent.
    """
    if absent_classes not in ABSENT_CLASS_MODES:
        raise ValueError(f'absent_classes must be one of {ABSENT_CLASS_MODES}, '
                         f'got {absent_classes!r}')
    hist = np.asarray(hist, dtype=np.int64)
    names = [str(name) for name in class_names]
    num_classes = len(names)
    if hist.shape != (num_classes, num_classes):
        raise ValueError(f'confusion matrix of shape {hist.shape} for {num_classes} classes')
    unpredicted = (np.zeros(num_classes, np.int64) if unpredicted is None else
                   np.asarray(unpredicted, dtype=np.int64).reshape(num_classes))
    fg = _foreground(num_classes, background_index)
    groups = _check_groups(groups, names)

    tp = np.diag(hist)
    gt_total = hist.sum(1) + unpredicted
    pred_total = hist.sum(0)
    f1, iou = _f1_iou(tp, gt_total, pred_total, absent_classes)
    total = int(gt_total.sum())

    metrics: Dict[str, float] = {
        'mean_f1': _mean(f1[fg], absent_classes),
        'mIoU': _mean(iou, absent_classes),
        'aAcc': 100.0 * float(tp.sum()) / total if total else math.nan,
    }
    metrics.update({f'f1/{name}': float(value) for name, value in zip(names, f1)})
    metrics.update({f'iou/{name}': float(value) for name, value in zip(names, iou)})
    for group, members in groups.items():
        idx = [names.index(member) for member in members]
        g_f1, g_iou = _f1_iou(hist[np.ix_(idx, idx)].sum(), gt_total[idx].sum(),
                              pred_total[idx].sum(), absent_classes)
        metrics[f'f1_group/{group}'] = float(g_f1)
        metrics[f'iou_group/{group}'] = float(g_iou)
    return metrics


def _foreground(num_classes: int, background_index: Optional[int]) -> List[int]:
    if background_index is None:
        return list(range(num_classes))
    if not -num_classes <= background_index < num_classes:
        raise ValueError(f'background_index {background_index} out of range for '
                         f'{num_classes} classes')
    background_index %= num_classes
    return [c for c in range(num_classes) if c != background_index]


def _check_groups(groups: Optional[Mapping[str, Sequence[str]]],
                  names: Optional[Sequence[str]] = None) -> Dict[str, List[str]]:
    """Validate ``groups`` (and, given the class names, its members)."""
    if groups is None:
        return {}
    if not isinstance(groups, Mapping):
        raise TypeError(f'groups must be a dict {{name: [class names]}}, got {type(groups)}')
    checked = {}
    for group, members in groups.items():
        if isinstance(members, str) or not isinstance(members, Sequence) or not members:
            raise ValueError(f'group {group!r} must list at least one class name, got {members!r}')
        members = [str(member) for member in members]
        if len(set(members)) != len(members):
            raise ValueError(f'group {group!r} lists a class twice: {members}')
        if names is not None:
            unknown = [member for member in members if member not in names]
            if unknown:
                raise ValueError(f'group {group!r} names unknown classes {unknown}; the classes '
                                 f'are {list(names)}')
        checked[str(group)] = members
    return checked


def _get(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for the dicts MMEngine's Evaluator passes, ``sample.key`` otherwise."""
    if isinstance(sample, Mapping):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _label_map(sample: Any, key: str, img_path: str) -> torch.Tensor:
    field = _get(sample, key)
    if field is None:
        raise KeyError(f'{img_path}: data sample has no {key!r} (FaceParsingMetric needs both '
                       "'pred_sem_seg' and 'gt_sem_seg')")
    data = _get(field, 'data', field) if not isinstance(field, (torch.Tensor, np.ndarray)) \
        else field
    data = torch.as_tensor(data)
    if data.dim() == 3 and data.shape[0] == 1:
        data = data[0]
    if data.dim() != 2:
        raise ValueError(f'{img_path}: {key} must be a (1, H, W) or (H, W) label map, got shape '
                         f'{tuple(data.shape)}')
    if data.is_floating_point() or data.is_complex():
        raise ValueError(f'{img_path}: {key} must hold integer label ids, got {data.dtype}')
    return data.long()


@METRICS.register_module()
class FaceParsingMetric(BaseMetric):
    """Per-class and foreground-mean F1 of face parsing, FaRL's protocol (farl_protocol.md §7.1).

    Consumes mmseg data samples whose ``pred_sem_seg.data`` is a ``(1, H, W)`` label map already
    in original-image space, and ``gt_sem_seg.data`` of the same shape. Class names come from
    ``dataset_meta['classes']`` (set by the Runner from the dataset).

    Args:
        ignore_index: ground-truth value excluded from scoring (``None``: none). Must not be a
            class id.
        background_index: the class left out of ``mean_f1`` (default the first one); ``None``
            averages every class.
        groups: merged classes reported as ``f1_group/<name>`` and ``iou_group/<name>``, e.g.
            ``dict(eyes=['left_eye', 'right_eye'], mouth=['upper_lip', 'inner_mouth',
            'lower_lip'])``. Members are class names of ``dataset_meta``.
        absent_classes: ``'exclude'`` (default), ``'nan'`` (FaRL's arithmetic) or ``'zero'``:
            how a class with no ground-truth and no predicted pixel enters the results.
        output_dir: if set, ``confusion_matrix.npy`` (``(C, C)`` int64, rows ground truth) is
            written there at each evaluation (``unpredicted_pixels.npy`` too when non-zero).
        collect_device, collect_dir, prefix: as :class:`mmengine.evaluator.BaseMetric`. The
            default prefix is empty so that configs write ``save_best='mean_f1'`` (with
            ``rule='greater'``: MMEngine cannot infer the rule from that name).

    After :meth:`compute_metrics` (on the main process) :attr:`last_confusion_matrix` holds the
    summed ``(C, C)`` matrix and :attr:`last_unpredicted` the ``(C,)`` "no prediction" counts.

    Example:
        >>> val_evaluator = dict(type='FaceParsingMetric',
        ...                      groups=dict(eyes=['left_eye', 'right_eye']))
    """

    default_prefix: Optional[str] = ''

    def __init__(self,
                 ignore_index: Optional[int] = 255,
                 background_index: Optional[int] = 0,
                 groups: Optional[Mapping[str, Sequence[str]]] = None,
                 absent_classes: str = 'exclude',
                 output_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if absent_classes not in ABSENT_CLASS_MODES:
            raise ValueError(f'absent_classes must be one of {ABSENT_CLASS_MODES}, '
                             f'got {absent_classes!r}')
        self.ignore_index = ignore_index
        self.background_index = background_index
        self.groups = _check_groups(groups)
        self.absent_classes = absent_classes
        self.output_dir = output_dir
        self.last_confusion_matrix: Optional[np.ndarray] = None
        self.last_unpredicted: Optional[np.ndarray] = None

    # ----------------------------------------------------------------------------------- classes
    @property
    def class_names(self) -> List[str]:
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        if not classes:
            raise ValueError('FaceParsingMetric needs dataset_meta["classes"] (the Runner sets it '
                             'from the dataset; set metric.dataset_meta yourself otherwise)')
        return [str(name) for name in classes]

    @property
    def num_classes(self) -> int:
        num_classes = len(self.class_names)
        if self.ignore_index is not None and 0 <= self.ignore_index < num_classes:
            raise ValueError(f'ignore_index {self.ignore_index} is a class id '
                             f'({num_classes} classes)')
        _foreground(num_classes, self.background_index)
        _check_groups(self.groups, self.class_names)
        return num_classes

    # --------------------------------------------------------------------------------- per sample
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Append one ``(C, C + 1)`` int64 count matrix per sample to ``self.results``."""
        num_classes = self.num_classes
        for sample in data_samples:
            img_path = str(_get(sample, 'img_path') or '<data sample without img_path>')
            pred = _label_map(sample, 'pred_sem_seg', img_path)
            gt = _label_map(sample, 'gt_sem_seg', img_path).to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(f'{img_path}: prediction of shape {tuple(pred.shape)} but ground '
                                 f'truth of shape {tuple(gt.shape)}; predictions must be mapped '
                                 'back to the original image before scoring')
            self.results.append(self.sample_counts(pred, gt, num_classes, img_path))

    def sample_counts(self, pred: torch.Tensor, gt: torch.Tensor, num_classes: int,
                      img_path: str = '<unknown image>') -> np.ndarray:
        """``(C, C + 1)`` counts ``[gt, pred]`` of one image; the last column: no prediction."""
        pred = pred.reshape(-1)
        gt = gt.reshape(-1)
        ignore = self.ignore_index
        self._check_values(gt, num_classes, 'ground-truth', img_path)
        self._check_values(pred, num_classes, 'predicted', img_path)
        if ignore is not None:
            keep = gt != ignore
            gt, pred = gt[keep], pred[keep]
            pred = torch.where(pred == ignore, torch.full_like(pred, num_classes), pred)
        counts = torch.bincount(gt * (num_classes + 1) + pred,
                                minlength=num_classes * (num_classes + 1))
        return counts.reshape(num_classes, num_classes + 1).cpu().numpy().astype(np.int64)

    def _check_values(self, labels: torch.Tensor, num_classes: int, what: str,
                      img_path: str) -> None:
        bad = (labels < 0) | (labels >= num_classes)
        if self.ignore_index is not None:
            bad &= labels != self.ignore_index
        if bool(bad.any()):
            values = torch.unique(labels[bad]).tolist()
            shown = values[:8] + (['...'] if len(values) > 8 else [])
            allowed = f'0..{num_classes - 1}'
            if self.ignore_index is not None:
                allowed += f' or ignore_index {self.ignore_index}'
            raise ValueError(f'{img_path}: {what} label value(s) {shown} out of range; expected '
                             f'{allowed} ({num_classes} classes: {self.class_names})')

    # ------------------------------------------------------------------------------ dataset level
    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum the per-sample counts (exact int64) and derive F1, IoU and accuracy."""
        names = self.class_names
        num_classes = self.num_classes
        total = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
        for counts in results:
            counts = np.asarray(counts)
            if counts.shape != total.shape:
                raise ValueError(f'FaceParsingMetric result of shape {counts.shape}, expected '
                                 f'{total.shape}: results of another metric or class list?')
            total += counts.astype(np.int64, copy=False)
        hist, unpredicted = total[:, :num_classes].copy(), total[:, num_classes].copy()
        self.last_confusion_matrix = hist
        self.last_unpredicted = unpredicted

        metrics = confusion_matrix_metrics(hist, names, self.background_index, self.groups,
                                           self.absent_classes, unpredicted)
        support = hist.sum(1) + unpredicted + hist.sum(0)
        absent = [name for name, pixels in zip(names, support) if pixels == 0]
        if absent:
            how = {'exclude': 'NaN, left out of the means', 'nan': 'NaN, means are NaN',
                   'zero': 'counted as 0'}[self.absent_classes]
            print_log(f'FaceParsingMetric: classes {absent} have neither ground-truth nor '
                      f'predicted pixels ({how})', logger='current', level=logging.WARNING)
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            np.save(osp.join(self.output_dir, 'confusion_matrix.npy'), hist)
            if unpredicted.any():
                np.save(osp.join(self.output_dir, 'unpredicted_pixels.npy'), unpredicted)
        print_log('\n' + self._table(metrics, names, hist, unpredicted), logger='current')
        return metrics

    def _table(self, metrics: Mapping[str, float], names: Sequence[str], hist: np.ndarray,
               unpredicted: np.ndarray) -> str:
        width = max([len(n) for n in names] + [len(g) for g in self.groups] + [8])
        lines = [f'{"class":<{width}}  {"F1":>7}  {"IoU":>7}  {"GT pixels":>12}']
        gt_pixels = hist.sum(1) + unpredicted
        for name, pixels in zip(names, gt_pixels):
            lines.append(f'{name:<{width}}  {metrics[f"f1/{name}"]:7.2f}  '
                         f'{metrics[f"iou/{name}"]:7.2f}  {int(pixels):>12}')
        for group in self.groups:
            lines.append(f'{group:<{width}}  {metrics[f"f1_group/{group}"]:7.2f}  '
                         f'{metrics[f"iou_group/{group}"]:7.2f}  {"(group)":>12}')
        lines.append(f'mean_f1 (foreground) {metrics["mean_f1"]:.2f}  mIoU (all classes) '
                     f'{metrics["mIoU"]:.2f}  aAcc {metrics["aAcc"]:.2f}')
        return '\n'.join(lines)
