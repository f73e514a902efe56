"""Face-alignment NME / AUC / FR with FaRL's protocol, every test subset in one run.

Definitions: :mod:`faceanalysis.evaluation.functional.alignment` (farl_protocol.md §4.3, §7.2).

**Data-sample contract** (what :meth:`FaceAlignmentMetric.process` reads; dicts as MMEngine's
``Evaluator`` passes them, or ``PoseDataSample``-like objects; tensors or arrays). Everything is
in **original-image pixels**, one face per sample:

* prediction: ``pred_instances.keypoints``, ``(1, K, 2)`` (or ``(K, 2)``); mmpose's
  ``TopdownPoseEstimator`` writes it there after mapping the decoded points back to the image.
* ground-truth landmarks, the first present of:

  1. ``gt_keypoints`` (a metainfo / top-level field), ``(K, 2)`` or ``(1, K, 2)``: the
     recommended field, unambiguous whatever the pipeline does;
  2. ``gt_instances.keypoints``, ``(1, K, 2)``: mmpose packs the untransformed ``keypoints``
     there (its transforms write ``transformed_keypoints``); a pipeline that transforms
     ``keypoints`` in place must provide ``gt_keypoints`` instead;
  3. ``raw_ann_info['keypoints']``: ``(K, 2)``, ``(K, 3)`` or flat ``[x, y, (v,) ...]``
     (mmpose's COCO-style annotation; a third column is a visibility flag and is ignored). Last,
     because it is the file's raw annotation, before any correction the dataset applies.

* ground-truth face box (only for the ``box`` / ``diag`` normalisers), the first present of:
  ``face_box`` (metainfo, ``(x1, y1, x2, y2)``), ``gt_instances.bboxes`` (``(1, 4)``, xyxy).
* ``subsets`` (metainfo, optional; else ``subset``): the test subsets this image belongs to, a
  string or a sequence of strings (``'common'``; ``('test', 'test_largepose', 'test_blur')``;
  ``()``). Tags are normalised: a ``tag_prefix`` (``'test_'``) is stripped (``test_frontal`` ->
  ``frontal``) and tags naming the whole split (``whole_set_tags``: ``test``, ``full``, ``all``,
  and ``overall_name``) are dropped, since every image is scored in the overall set
  (``overall_name``) anyway. So the readers of :mod:`faceanalysis.datasets.alignment`
  (``subsets=('full', 'common')``, ``('test', 'test_blur')``, ``('test', 'test_frontal')``) give
  FaRL's subset names. Each image must appear **once** in the evaluated dataset, carrying all its
  tags.
* ``img_path`` or ``img_id`` (optional): names the image in errors and per-image dumps.

Visibility flags are ignored: FaRL scores every landmark (§7.2).

**Units**: NME, AUC and FR are reported **x100** (percent), as FaRL's README and the tables of
:mod:`faceanalysis.evaluation.paper_results` (``0.943`` = an NME of 0.00943; AUC 61.16 = 0.6116;
FR 1.76 = 1.76 % of the images). mmpose's ``NME`` metric and FaRL's raw logs use fractions.

**Keys**: ``nme_<norm>/<subset>`` for every normaliser and subset (the overall set included),
``auc_<norm>_<thr%>/<subset>`` and ``fr_<norm>_<thr%>/<subset>`` for every ``auc_fr`` entry
(FaRL's names: ``auc_inter_ocular_10``, ``fr_box_7``), and ``nme`` = ``nme_<main_norm>/
<main_subset>``, the headline for ``save_best='nme', rule='less'``.

Distributed evaluation: :meth:`process` appends one small dict per sample (its NMEs and subset
tags); ``BaseMetric.evaluate`` gathers them from every rank in dataset order and drops the
sampler's padding, so the result does not depend on the number of processes.
"""
from __future__ import annotations

import json
import logging
import math
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from faceanalysis.registry import METRICS
from ..functional.alignment import (BOX_NORMALIZERS, LANDMARK_NORMALIZERS, NORMALIZERS,
                                    alignment_dataset, box_diag_norm, box_norm, ced_auc_fr,
                                    inter_ocular_norm, inter_pupil_norm, nme_per_image,
                                    threshold_suffix)

__all__ = ['FaceAlignmentMetric', 'ALIGNMENT_DEFAULTS', 'alignment_key_map']

#: per-dataset defaults (farl_protocol.md §7.2): headline normaliser, name of the whole test set,
#: AUC/FR settings FaRL logs
ALIGNMENT_DEFAULTS: Dict[str, Dict[str, Any]] = {
    '300w': dict(main_norm='inter_ocular', overall_name='full', auc_fr=()),
    'wflw': dict(main_norm='inter_ocular', overall_name='all',
                 auc_fr=(dict(norm='inter_ocular', threshold=0.1),)),
    'aflw19': dict(main_norm='diag', overall_name='full',
                   auc_fr=(dict(norm='box', threshold=0.07),)),
}

#: our subset names that FaRL's tables (paper_results) spell differently
_SUBSET_ALIASES = {'pose': ('largepose', 'large_pose'), 'challenging': ('challenge',),
                   'expression': ('expr',), 'illumination': ('illum',),
                   'occlusion': ('occl',), 'full': ('all', 'test'), 'all': ('full', 'test')}


def alignment_key_map(metrics: Mapping[str, Any],
                      published: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """``compare_with_paper``'s ``key_map`` for :class:`FaceAlignmentMetric` results.

    Maps FaRL's names (``inter_ocular/full``, ``auc_box_7/frontal``, ``inter_ocular/pose``) to
    ours (``nme_inter_ocular/full``, ``auc_box_7/frontal``, ``nme_inter_ocular/largepose``):
    NME keys get the ``nme_`` prefix and subsets are matched by name, then by the usual aliases
    (``pose``/``largepose``, ``challenging``/``challenge``, ``full``/``all``). ``published``:
    the paper's keys to map (default: every alignment key in
    :data:`faceanalysis.evaluation.paper_results.ALIGNMENT_RESULTS`).
    """
    if published is None:
        from ..paper_results import ALIGNMENT_RESULTS
        published = sorted({key for runs in ALIGNMENT_RESULTS.values() for recipe in
                            runs.values() for run in recipe.values() for key in run['metrics']})
    key_map = {}
    for key in published:
        name, _, subset = str(key).partition('/')
        ours_name = f'nme_{name}' if name in NORMALIZERS else name
        candidates = [subset, *_SUBSET_ALIASES.get(subset, ())] if subset else ['']
        for candidate in candidates:
            ours = f'{ours_name}/{candidate}' if candidate else ours_name
            if ours in metrics:
                key_map[key] = ours
                break
        else:
            key_map[key] = f'{ours_name}/{subset}' if subset else ours_name
    return key_map


def _get(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for dicts, ``sample.key`` for data elements (metainfo included)."""
    if sample is None:
        return default
    if isinstance(sample, Mapping):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _array(value: Any) -> np.ndarray:
    if hasattr(value, 'detach'):  # torch.Tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _points(value: Any, what: str, name: str, num_keypoints: Optional[int] = None) -> np.ndarray:
    """``(K, 2)`` from ``(1, K, 2)``, ``(K, 2)``, ``(K, 3)`` or a flat list."""
    points = _array(value)
    if points.ndim == 1 and num_keypoints:
        if points.size == 3 * num_keypoints:
            points = points.reshape(num_keypoints, 3)
        elif points.size == 2 * num_keypoints:
            points = points.reshape(num_keypoints, 2)
    if points.ndim == 3:
        if points.shape[0] != 1:
            raise ValueError(f'{name}: {what} holds {points.shape[0]} instances; the face-'
                             'alignment metric scores one face per sample')
        points = points[0]
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f'{name}: {what} must be (1, K, 2) or (K, 2) landmarks, got shape '
                         f'{points.shape}')
    points = points[:, :2]
    if not np.isfinite(points).all():
        raise ValueError(f'{name}: {what} contains NaN or infinite coordinates')
    return points


@METRICS.register_module()
class FaceAlignmentMetric(BaseMetric):
    """NME (inter-ocular, inter-pupil, box, box diagonal), CED, AUC and FR of face alignment.

    Args:
        dataset: ``'300w'``, ``'wflw'`` or ``'aflw19'`` (aliases accepted); selects the landmark
            ids of the landmark normalisers and the defaults below. ``None``: taken from
            ``dataset_meta['dataset_name']`` (mmpose's metainfo names ``300w``, ``wflw``,
            ``aflw`` work).
        norms: normalisers to report, any of ``'inter_ocular'``, ``'inter_pupil'``, ``'box'``
            (``sqrt(w*h)``), ``'diag'`` (``sqrt(w**2+h**2)``) of the ground-truth face box.
        main_norm: the normaliser of the headline key ``nme`` (default per dataset: 300W and WFLW
            ``inter_ocular``, AFLW-19 ``diag``, as farl_protocol.md §7.2).
        auc_fr: AUC/FR settings, a list of ``dict(norm=..., threshold=...)`` (default per
            dataset: WFLW inter-ocular at 0.1, AFLW-19 box at 0.07, 300W none); ``step`` 1e-4.
        overall_name: the subset name of the whole evaluated set (default ``'full'``; WFLW
            ``'all'``).
        main_subset: the subset of the headline (default ``overall_name``).
        subsets: expected subset names (normalised, e.g. ``'frontal'``), in report order. If
            given, a sample tagged with another subset raises, and a listed subset without
            samples is reported as NaN (with a warning). Default: the subsets found in the data,
            in order of first appearance.
        whole_set_tags: tags that name the whole evaluated split; dropped.
        tag_prefix: stripped from the start of a tag (``None``: nothing is stripped).
        ced_norms: normalisers whose CED curve is kept (:attr:`ced_curves`) even without an
            ``auc_fr`` entry, at ``ced_threshold`` (default ``(main_norm,)``).
        ced_threshold: threshold (fraction) of those extra curves.
        step: CED grid step (FaRL: 1e-4).
        even: Simpson's odd-interval rule, ``'avg'`` (FaRL's ``simps``) or ``'simpson'``
            (see :func:`~faceanalysis.evaluation.functional.alignment.simpson_integral`).
        output_dir: if set, every evaluation writes ``alignment_ced.json`` (the CED curves) and
            ``alignment_per_image.json`` (every image's NMEs and subsets) there.
        collect_device, collect_dir, prefix: as :class:`mmengine.evaluator.BaseMetric`. The
            default prefix is empty so that configs write ``save_best='nme', rule='less'``.

    After :meth:`compute_metrics` (main process), :attr:`ced_curves` maps ``'<norm>_<thr%>/
    <subset>'`` (``'inter_ocular_10/all'``, ``'box_7/frontal'``) to ``dict(threshold=, xaxis=,
    ced=)`` (NumPy arrays, fractions), ready for :func:`faceanalysis.visualization.plot_ced` and
    :func:`faceanalysis.evaluation.write_alignment_report`, and :attr:`per_image` holds the
    gathered per-image results.

    Example:
        >>> test_evaluator = dict(type='FaceAlignmentMetric', dataset='wflw',
        ...                       subsets=['largepose', 'expression', 'illumination', 'makeup',
        ...                                'occlusion', 'blur'])
    """

    default_prefix: Optional[str] = ''

    def __init__(self,
                 dataset: Optional[str] = None,
                 norms: Sequence[str] = NORMALIZERS,
                 main_norm: Optional[str] = None,
                 auc_fr: Optional[Sequence[Mapping[str, Any]]] = None,
                 overall_name: Optional[str] = None,
                 main_subset: Optional[str] = None,
                 subsets: Optional[Sequence[str]] = None,
                 whole_set_tags: Sequence[str] = ('test', 'full', 'all'),
                 tag_prefix: Optional[str] = 'test_',
                 ced_norms: Optional[Sequence[str]] = None,
                 ced_threshold: float = 0.1,
                 step: float = 1e-4,
                 even: str = 'avg',
                 output_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self._dataset = None if dataset is None else alignment_dataset(dataset)
        norms = tuple(norms)
        unknown = [n for n in norms if n not in NORMALIZERS]
        if not norms or unknown or len(set(norms)) != len(norms):
            raise ValueError(f'norms must be distinct names among {NORMALIZERS}, got {norms}')
        self.norms = norms
        self._main_norm = main_norm
        self._auc_fr = None if auc_fr is None else self._check_auc_fr(auc_fr)
        self._overall_name = overall_name
        self._main_subset = main_subset
        if subsets is not None:
            subsets = [str(s) for s in subsets]
            if len(set(subsets)) != len(subsets):
                raise ValueError(f'subsets lists a name twice: {subsets}')
        self.subsets = subsets
        self.whole_set_tags = tuple(str(tag) for tag in whole_set_tags)
        self.tag_prefix = tag_prefix or None
        self._ced_norms = None if ced_norms is None else tuple(ced_norms)
        if self._ced_norms is not None and any(n not in NORMALIZERS for n in self._ced_norms):
            raise ValueError(f'ced_norms must be among {NORMALIZERS}, got {self._ced_norms}')
        self.ced_threshold = float(ced_threshold)
        self.step = float(step)
        if even not in ('avg', 'simpson'):
            raise ValueError(f"even must be 'avg' or 'simpson', got {even!r}")
        self.even = even
        self.output_dir = output_dir
        self.ced_curves: Dict[str, Dict[str, Any]] = OrderedDict()
        self.per_image: List[Dict[str, Any]] = []
        if self._dataset is not None:  # fail at build time for a bad configuration
            self._check_config()

    # ------------------------------------------------------------------------------ settings
    @staticmethod
    def _check_auc_fr(auc_fr: Sequence[Mapping[str, Any]]) -> Tuple[Dict[str, Any], ...]:
        if isinstance(auc_fr, Mapping):
            auc_fr = [auc_fr]
        checked = []
        for entry in auc_fr:
            entry = dict(entry)
            norm, threshold = entry.get('norm'), entry.get('threshold')
            if norm not in NORMALIZERS or threshold is None or set(entry) - {'norm', 'threshold'}:
                raise ValueError(f'auc_fr entries are dict(norm=<one of {NORMALIZERS}>, '
                                 f'threshold=<fraction>), got {entry}')
            threshold = float(threshold)
            if not 0 < threshold < 1:
                raise ValueError(f'auc_fr threshold is a fraction of the normaliser (FaRL: 0.1, '
                                 f'0.07), got {threshold}')
            checked.append(dict(norm=norm, threshold=threshold))
        suffixes = [threshold_suffix(e['norm'], e['threshold']) for e in checked]
        if len(set(suffixes)) != len(suffixes):
            raise ValueError(f'auc_fr entries repeat a setting: {suffixes}')
        return tuple(checked)

    @property
    def dataset(self) -> str:
        if self._dataset is not None:
            return self._dataset
        name = (self.dataset_meta or {}).get('dataset_name')
        if name is None:
            raise ValueError('FaceAlignmentMetric needs dataset= (300w, wflw, aflw19) or '
                             'dataset_meta["dataset_name"] to know the landmark ids of its '
                             'normalisers')
        return alignment_dataset(name)

    def _default(self, key: str) -> Any:
        return ALIGNMENT_DEFAULTS[self.dataset][key]

    @property
    def main_norm(self) -> str:
        norm = self._main_norm or self._default('main_norm')
        if norm not in self.norms:
            raise ValueError(f'main_norm {norm!r} is not among norms {self.norms}')
        return norm

    @property
    def auc_fr(self) -> Tuple[Dict[str, Any], ...]:
        entries = self._auc_fr if self._auc_fr is not None else self._check_auc_fr(
            self._default('auc_fr'))
        for entry in entries:
            if entry['norm'] not in self.norms:
                raise ValueError(f'auc_fr uses {entry["norm"]!r}, which is not among norms '
                                 f'{self.norms}')
        return entries

    @property
    def overall_name(self) -> str:
        return str(self._overall_name or self._default('overall_name'))

    @property
    def main_subset(self) -> str:
        return str(self._main_subset or self.overall_name)

    @property
    def ced_settings(self) -> List[Tuple[str, str, float]]:
        """``(curve name, norm, threshold)`` of every CED curve kept."""
        settings = [(threshold_suffix(e['norm'], e['threshold']), e['norm'], e['threshold'])
                    for e in self.auc_fr]
        covered = {norm for _, norm, _ in settings}
        for norm in self._ced_norms if self._ced_norms is not None else (self.main_norm,):
            if norm not in covered and norm in self.norms:
                settings.append((threshold_suffix(norm, self.ced_threshold), norm,
                                 self.ced_threshold))
        return settings

    def _check_config(self) -> None:
        self.main_norm, self.auc_fr, self.ced_settings  # noqa: B018 (raise now if invalid)
        if self.subsets is not None:
            whole = set(self.whole_set_tags) | {self.overall_name}
            if whole & set(self.subsets):
                raise ValueError(f'subsets must not list the whole set {sorted(whole)} (every '
                                 f'image is scored in {self.overall_name!r}), got {self.subsets}')
            if self.main_subset != self.overall_name and self.main_subset not in self.subsets:
                raise ValueError(f'main_subset {self.main_subset!r} is not among subsets '
                                 f'{self.subsets}')

    # ---------------------------------------------------------------------------- per sample
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Append ``dict(name=, nme={norm: fraction}, subsets=[...])`` per sample."""
        dataset = self.dataset
        for sample in data_samples:
            name = next((str(v) for v in (_get(sample, 'img_path'), _get(sample, 'img_id'))
                         if v is not None and v != ''), f'<sample {len(self.results)}>')
            pred = _get(_get(sample, 'pred_instances'), 'keypoints')
            if pred is None:
                raise KeyError(f'{name}: data sample has no pred_instances.keypoints')
            pred = _points(pred, 'pred_instances.keypoints', name)
            gt = self._gt_keypoints(sample, name, len(pred))
            if gt.shape != pred.shape:
                raise ValueError(f'{name}: {len(pred)} predicted landmarks but {len(gt)} in the '
                                 'ground truth')
            box = self._box(sample, name) if any(n in BOX_NORMALIZERS for n in self.norms) \
                else None
            nme = {}
            for norm in self.norms:
                if norm == 'inter_ocular':
                    d = inter_ocular_norm(gt, dataset)
                elif norm == 'inter_pupil':
                    d = inter_pupil_norm(gt, dataset)
                elif norm == 'box':
                    d = box_norm(box)
                else:
                    d = box_diag_norm(box)
                if not (np.isfinite(d).all() and (d > 0).all()):
                    raise ValueError(f'{name}: {norm} normaliser is {float(d[0])} (coincident '
                                     'ground-truth landmarks or an empty box)')
                nme[norm] = float(nme_per_image(pred[None], gt[None], d)[0])
            self.results.append(dict(name=name, nme=nme, subsets=self._subsets(sample, name)))

    @staticmethod
    def _gt_keypoints(sample: Any, name: str, num_keypoints: int) -> np.ndarray:
        value = _get(sample, 'gt_keypoints')
        if value is not None:
            return _points(value, 'gt_keypoints', name, num_keypoints)
        value = _get(_get(sample, 'gt_instances'), 'keypoints')
        if value is not None:
            return _points(value, 'gt_instances.keypoints', name, num_keypoints)
        value = _get(_get(sample, 'raw_ann_info'), 'keypoints')
        if value is not None:
            return _points(value, 'raw_ann_info["keypoints"]', name, num_keypoints)
        raise KeyError(f'{name}: no ground-truth landmarks (looked for gt_keypoints, '
                       'gt_instances.keypoints and raw_ann_info["keypoints"])')

    @staticmethod
    def _box(sample: Any, name: str) -> np.ndarray:
        value = _get(sample, 'face_box')
        what = 'face_box'
        if value is None:
            value = _get(_get(sample, 'gt_instances'), 'bboxes')
            what = 'gt_instances.bboxes'
        if value is None:
            raise KeyError(f'{name}: the box / diag normalisers need the ground-truth face box '
                           '(face_box or gt_instances.bboxes, x1 y1 x2 y2 in image pixels)')
        box = _array(value).reshape(-1)
        if box.size != 4:
            raise ValueError(f'{name}: {what} must hold one box (x1, y1, x2, y2), got '
                             f'{box.size} values')
        if not np.isfinite(box).all():
            raise ValueError(f'{name}: {what} is not finite: {box.tolist()}')
        return box[None]

    def _subsets(self, sample: Any, name: str) -> List[str]:
        value = _get(sample, 'subsets')
        if value is None:
            value = _get(sample, 'subset')
        if value is None or (isinstance(value, str) and not value):
            tags = []
        elif isinstance(value, str):
            tags = [value]
        else:
            tags = [str(tag) for tag in value]
        prefix = self.tag_prefix
        tags = [tag[len(prefix):] if prefix and tag.startswith(prefix) and tag != prefix else tag
                for tag in tags]
        whole = set(self.whole_set_tags) | {self.overall_name}
        tags = [tag for tag in dict.fromkeys(tags) if tag and tag not in whole]
        if self.subsets is not None:
            unknown = [tag for tag in tags if tag not in self.subsets]
            if unknown:
                raise ValueError(f'{name}: unknown subset(s) {unknown}; expected among '
                                 f'{self.subsets} (or {self.overall_name!r})')
        return tags

    # ------------------------------------------------------------------------- dataset level
    def compute_metrics(self, results: list) -> Dict[str, float]:
        """NME means, AUC and FR per subset (x100); fills :attr:`ced_curves`."""
        if not results:
            raise ValueError('FaceAlignmentMetric: no sample was processed')
        for result in results:
            if not isinstance(result, Mapping) or 'nme' not in result:
                raise ValueError('FaceAlignmentMetric got a result it did not produce '
                                 f'({type(result).__name__}); results of another metric?')
        self.per_image = list(results)
        groups: 'OrderedDict[str, List[int]]' = OrderedDict(
            [(self.overall_name, list(range(len(results))))])
        for name in self.subsets or ():
            groups[name] = []
        for index, result in enumerate(results):
            for tag in result['subsets']:
                groups.setdefault(tag, []).append(index)

        metrics: Dict[str, float] = OrderedDict()
        metrics['nme'] = math.nan
        self.ced_curves = OrderedDict()
        empty = [name for name, members in groups.items() if not members]
        if empty:
            print_log(f'FaceAlignmentMetric: subsets {empty} have no image (reported as NaN)',
                      logger='current', level=logging.WARNING)
        for subset, members in groups.items():
            nmes = {norm: np.array([results[i]['nme'][norm] for i in members], dtype=np.float64)
                    for norm in self.norms}
            for norm in self.norms:
                values = nmes[norm]
                metrics[f'nme_{norm}/{subset}'] = float(values.mean() * 100) if members \
                    else math.nan
            for curve, norm, threshold in self.ced_settings:
                is_auc = any(curve == threshold_suffix(e['norm'], e['threshold'])
                             for e in self.auc_fr)
                if members:
                    auc, fr, xaxis, ced = ced_auc_fr(nmes[norm], threshold, self.step, self.even)
                    self.ced_curves[f'{curve}/{subset}'] = dict(
                        norm=norm, subset=subset, threshold=threshold, xaxis=xaxis, ced=ced,
                        auc=auc * 100, fr=fr * 100, count=len(members))
                else:
                    auc = fr = math.nan
                if is_auc:
                    metrics[f'auc_{curve}/{subset}'] = auc * 100
                    metrics[f'fr_{curve}/{subset}'] = fr * 100
        metrics['nme'] = metrics[f'nme_{self.main_norm}/{self.main_subset}']
        for subset, members in groups.items():
            metrics[f'count/{subset}'] = len(members)
        if self.output_dir:
            self._dump(results)
        print_log('\n' + self._table(metrics, groups), logger='current')
        return dict(metrics)

    def _dump(self, results: list) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        curves = {key: dict(value, xaxis=value['xaxis'].tolist(), ced=value['ced'].tolist())
                  for key, value in self.ced_curves.items()}
        with open(osp.join(self.output_dir, 'alignment_ced.json'), 'w') as f:
            json.dump(dict(units='fractions (xaxis: NME; ced: share of images); auc and fr x100',
                           step=self.step, curves=curves), f)
        with open(osp.join(self.output_dir, 'alignment_per_image.json'), 'w') as f:
            json.dump(dict(units='NME as fractions', images=list(results)), f)

    def _table(self, metrics: Mapping[str, float], groups: Mapping[str, List[int]]) -> str:
        columns = [f'nme_{norm}' for norm in self.norms]
        columns += [f'{kind}_{threshold_suffix(e["norm"], e["threshold"])}'
                    for e in self.auc_fr for kind in ('auc', 'fr')]
        width = max(len(s) for s in list(groups) + ['subset'])
        lines = [f'{"subset":<{width}}  {"images":>6}  ' +
                 '  '.join(f'{c:>{max(len(c), 7)}}' for c in columns)]
        for subset, members in groups.items():
            lines.append(f'{subset:<{width}}  {len(members):>6}  ' + '  '.join(
                f'{metrics[f"{c}/{subset}"]:>{max(len(c), 7)}.3f}' for c in columns))
        lines.append(f'(x100) headline nme = nme_{self.main_norm}/{self.main_subset} = '
                     f'{metrics["nme"]:.3f}')
        return '\n'.join(lines)

