"""FaRL's published downstream numbers, as data, and the comparison used by the reports.

Every number is transcribed from shared/docs/farl_protocol.md §7.3-§7.6, which parsed FaRL's
README and its training logs (``logs/paper/*``, ``logs/reproduce/*``). They are the **best epoch
on the test set** with the EMA model (§7.3), plus the last epoch where the logs give it.

Layout (plain dicts, JSON-serialisable)::

    PARSING_RESULTS[dataset][recipe][run] = dict(
        source=..., epoch=best epoch or None,
        metrics={'mean_f1': ..., 'f1/<FaRL class name>': ...},   # what the source gives
        last=dict(epoch=..., metrics={...}) or None)
    ALIGNMENT_RESULTS[dataset][recipe][run] = same layout, alignment metric names below

* ``dataset``: ``'lapa'``, ``'celebamaskhq'``; ``'300w'``, ``'wflw'``, ``'aflw19'``
  (:func:`canonical_dataset` accepts the usual spellings).
* ``recipe``: the backbone, named as the config suffixes: ``'farl-ep16'`` (alias ``'farl'``),
  ``'farl-ep64'``, ``'farl-50m-ep16'``.
* ``run``: ``'paper'`` (the paper's run) or ``'reproduced'`` (FaRL's own re-run).

Units are FaRL's: parsing F1 in percent; alignment NME x100 (``0.943`` is an NME of 0.00943),
FR and AUC in percent. Alignment metric names: ``<normalizer>/<subset>`` with normalizers
``inter_ocular``, ``inter_pupil``, ``box`` (sqrt(w*h)), ``diag`` (bbox diagonal), and
``auc_box_7``, ``fr_box_7`` (AFLW, threshold 0.07), ``auc_inter_ocular_10``,
``fr_inter_ocular_10`` (WFLW, threshold 0.1), as FaRL's scorer logs them (§7.2).

Per-class parsing F1 is keyed by FaRL's class names (§2.3), whose order is the label-value order;
:func:`compare_with_paper` matches them to our classes **by index**, since our datasets keep FaRL's
label values (LaPa 11 classes, CelebAMask-HQ 19 classes in FaRL's overwrite order).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

__all__ = [
    'PARSING_CLASSES', 'PARSING_RESULTS', 'ALIGNMENT_RESULTS', 'README_RESULTS', 'PWC_RESULTS',
    'HEADLINE', 'ComparisonRow', 'canonical_dataset', 'canonical_recipe', 'paper_reference',
    'compare_with_paper', 'higher_is_better'
]

_PROTOCOL = 'shared/docs/farl_protocol.md'

#: FaRL's class names in label-value order (farl_protocol.md §2.3)
PARSING_CLASSES: Dict[str, Tuple[str, ...]] = {
    'lapa': ('background', 'skin', 'lb', 'rb', 'le', 're', 'nose', 'ul', 'im', 'll', 'hair'),
    'celebamaskhq': ('background', 'neck', 'face', 'cloth', 'rr', 'lr', 'rb', 'lb', 're', 'le',
                     'nose', 'imouth', 'llip', 'ulip', 'hair', 'glass', 'hat', 'earr', 'neckl'),
}


def _f1(classes: Sequence[str], values: Sequence[float]) -> Dict[str, float]:
    assert len(classes) == len(values)
    return {f'f1/{name}': value for name, value in zip(classes, values)}


def _run(source: str, epoch: Optional[int], metrics: Mapping[str, float],
         last: Optional[Tuple[int, Mapping[str, float]]] = None) -> Dict[str, Any]:
    return dict(source=source, epoch=epoch, metrics=dict(metrics),
                last=None if last is None else dict(epoch=last[0], metrics=dict(last[1])))


# --------------------------------------------------------------------------------------- parsing
PARSING_RESULTS: Dict[str, Dict[str, Dict[str, Dict[str, Any]]]] = {
    'lapa': {
        'farl-ep16': {
            'paper': _run(
                f'{_PROTOCOL} §7.5 (logs/paper, LaPa ep16, best epoch 150), §7.3 (last epoch), '
                '§7.4 (README)', 150,
                dict(mean_f1=93.88, **_f1(PARSING_CLASSES['lapa'],
                                          (99.25, 98.00, 92.70, 92.65, 93.97, 93.91, 97.92, 90.15,
                                           91.74, 91.21, 96.52))),
                last=(300, dict(mean_f1=93.81))),
            'reproduced': _run(f'{_PROTOCOL} §7.5 (logs/reproduce, best epoch 125), §7.4', 125,
                               {'mean_f1': 93.86, 'f1/skin': 97.98, 'f1/hair': 96.47}),
        },
        'farl-ep64': {
            'reproduced': _run(f'{_PROTOCOL} §7.5 (logs/reproduce, best epoch 82), §7.4', 82,
                               dict(mean_f1=94.04)),
        },
        'farl-50m-ep16': {
            'reproduced': _run(f'{_PROTOCOL} §7.5 (logs/reproduce, best epoch 166), §7.4 '
                               '(commented-out README table)', 166, dict(mean_f1=94.01)),
        },
    },
    'celebamaskhq': {
        'farl-ep16': {
            'paper': _run(
                f'{_PROTOCOL} §7.5 (logs/paper, CelebAMask-HQ ep16, best epoch 25), §7.3 (last '
                'epoch), §7.4 (README)', 25,
                dict(mean_f1=89.56, **_f1(PARSING_CLASSES['celebamaskhq'],
                                          (96.90, 92.45, 96.74, 91.31, 89.46, 89.06, 87.14, 87.03,
                                           90.56, 90.71, 94.22, 92.80, 91.38, 90.17, 96.20, 95.37,
                                           92.09, 75.72, 69.71))),
                last=(300, dict(mean_f1=88.74))),
            'reproduced': _run(f'{_PROTOCOL} §7.5 (logs/reproduce, best epoch 25; the log has a '
                               'restart and ends at epoch 92), §7.4', 25, dict(mean_f1=89.65)),
        },
        'farl-ep64': {
            'reproduced': _run(f'{_PROTOCOL} §7.5 (logs/reproduce, best epoch 30), §7.4', 30,
                               dict(mean_f1=89.57), last=(300, dict(mean_f1=88.58))),
        },
        'farl-50m-ep16': {
            'reproduced': _run(f'{_PROTOCOL} §7.5 (logs/reproduce, best epoch 30), §7.4 '
                               '(commented-out README table)', 30, dict(mean_f1=89.68)),
        },
    },
}

# ------------------------------------------------------------------------------------- alignment
_AFLW_KEYS = ('diag', 'box', 'inter_ocular', 'inter_pupil', 'auc_box_7', 'fr_box_7')
_AFLW_FRONTAL_KEYS = ('diag', 'box', 'inter_ocular', 'inter_pupil', 'auc_box_7')
_WFLW_SUBSETS = ('pose', 'expression', 'illumination', 'makeup', 'occlusion', 'blur')


def _aflw(full: Sequence[float], frontal: Sequence[float]) -> Dict[str, float]:
    out = {f'{key}/full': value for key, value in zip(_AFLW_KEYS, full)}
    out.update({f'{key}/frontal': value for key, value in zip(_AFLW_FRONTAL_KEYS, frontal)})
    return out


def _300w(common: Tuple[float, float], challenging: Tuple[float, float],
          full: Tuple[float, float]) -> Dict[str, float]:
    out = {}
    for subset, (io, ip) in (('common', common), ('challenging', challenging), ('full', full)):
        out[f'inter_ocular/{subset}'] = io
        out[f'inter_pupil/{subset}'] = ip
    return out


def _wflw(nme: float, fr: float, auc: float, subsets: Sequence[float],
          subset_fr_auc: Optional[Sequence[Tuple[float, float]]] = None) -> Dict[str, float]:
    out = {'inter_ocular/all': nme, 'fr_inter_ocular_10/all': fr,
           'auc_inter_ocular_10/all': auc}
    out.update({f'inter_ocular/{name}': value for name, value in zip(_WFLW_SUBSETS, subsets)})
    for name, (fr_s, auc_s) in zip(_WFLW_SUBSETS, subset_fr_auc or ()):
        out[f'fr_inter_ocular_10/{name}'] = fr_s
        out[f'auc_inter_ocular_10/{name}'] = auc_s
    return out


_S76 = f'{_PROTOCOL} §7.6 (alignment logs'
ALIGNMENT_RESULTS: Dict[str, Dict[str, Dict[str, Dict[str, Any]]]] = {
    'aflw19': {
        'farl-ep16': {
            'paper': _run(f'{_S76}, paper ep16, selected epoch 15), §7.3', 15,
                          _aflw((0.943, 1.334, 3.968, 5.960, 81.34, 0.137),
                                (0.821, 1.161, 2.200, 3.178, 84.17)),
                          last=(150, {'diag/full': 1.000})),
            'reproduced': _run(f'{_S76}, rep ep16, selected epoch 19)', 19,
                               _aflw((0.943, 1.333, 3.985, 5.986, 81.37, 0.137),
                                     (0.820, 1.159, 2.197, 3.173, 84.21)),
                               last=(50, {'diag/full': 0.986})),
        },
        'farl-ep64': {
            'reproduced': _run(f'{_S76}, rep ep64, selected epoch 16)', 16,
                               _aflw((0.938, 1.327, 3.943, 5.919, 81.45, 0.160),
                                     (0.818, 1.157, 2.192, 3.166, 84.24)),
                               last=(50, {'diag/full': 0.984})),
        },
        'farl-50m-ep16': {
            'reproduced': _run(f'{_PROTOCOL} §7.4 (commented-out README table)', None,
                               {'diag/full': 0.937}),
        },
    },
    '300w': {
        'farl-ep16': {
            'paper': _run(f'{_S76}, paper ep16, selected epoch 183), §7.3', 183,
                          _300w((2.555, 3.544), (4.451, 6.422), (2.927, 4.108)),
                          last=(250, {'inter_ocular/full': 2.944})),
            'reproduced': _run(f'{_S76}, rep ep16, selected epoch 194)', 194,
                               _300w((2.548, 3.533), (4.458, 6.432), (2.922, 4.101)),
                               last=(250, {'inter_ocular/full': 2.941})),
        },
        'farl-ep64': {
            'reproduced': _run(f'{_S76}, rep ep64, selected epoch 63; per-subset minima: '
                               'challenging 4.426/6.386 at ep195, common 2.495/3.460 at ep60)', 63,
                               _300w((2.496, 3.461), (4.476, 6.459), (2.884, 4.048)),
                               last=(250, {'inter_ocular/full': 2.927})),
        },
        'farl-50m-ep16': {
            'reproduced': _run(f'{_PROTOCOL} §7.4 (commented-out README table)', None,
                               {'inter_ocular/full': 2.92}),
        },
    },
    'wflw': {
        'farl-ep16': {
            'paper': _run(f'{_S76}, paper ep16, selected epoch 30, subset FR/AUC at epoch 30), '
                          '§7.3', 30,
                          _wflw(3.964, 1.76, 61.16, (6.914, 4.206, 3.966, 3.800, 4.710, 4.571),
                                ((9.82, 35.84), (2.55, 58.80), (1.43, 61.77), (1.46, 62.19),
                                 (3.26, 54.99), (2.72, 56.06))),
                          last=(150, {'inter_ocular/all': 3.980})),
            'reproduced': _run(f'{_S76}, rep ep16, selected epoch 22)', 22,
                               _wflw(3.977, 1.84, 60.75,
                                     (6.772, 4.230, 3.871, 3.779, 4.687, 4.504)),
                               last=(224, {'inter_ocular/all': 4.031})),
        },
        'farl-ep64': {
            'reproduced': _run(f'{_S76}, rep ep64, selected epoch 28)', 28,
                               _wflw(3.882, 1.44, 61.52,
                                     (6.539, 4.091, 3.775, 3.781, 4.547, 4.383)),
                               last=(300, {'inter_ocular/all': 4.048})),
        },
        'farl-50m-ep16': {
            'reproduced': _run(f'{_PROTOCOL} §7.4 (commented-out README table)', None,
                               {'inter_ocular/all': 3.99}),
        },
    },
}

#: the rounded README table (farl_protocol.md §7.4): dataset -> recipe -> run -> headline value
README_RESULTS: Dict[str, Dict[str, Dict[str, float]]] = {
    'celebamaskhq': {'farl-ep16': {'paper': 89.56, 'reproduced': 89.65},
                     'farl-ep64': {'reproduced': 89.57}, 'farl-50m-ep16': {'reproduced': 89.68}},
    'lapa': {'farl-ep16': {'paper': 93.88, 'reproduced': 93.86},
             'farl-ep64': {'reproduced': 94.04}, 'farl-50m-ep16': {'reproduced': 94.01}},
    'aflw19': {'farl-ep16': {'paper': 0.943, 'reproduced': 0.943},
               'farl-ep64': {'reproduced': 0.938}, 'farl-50m-ep16': {'reproduced': 0.937}},
    '300w': {'farl-ep16': {'paper': 2.93, 'reproduced': 2.92},
             'farl-ep64': {'reproduced': 2.88}, 'farl-50m-ep16': {'reproduced': 2.92}},
    'wflw': {'farl-ep16': {'paper': 3.96, 'reproduced': 3.98},
             'farl-ep64': {'reproduced': 3.88}, 'farl-50m-ep16': {'reproduced': 3.99}},
}

#: PapersWithCode entries (taken from the paper; farl_protocol.md §7.4). The ep64 300W subsets
#: are per-subset minima, not the values at the selected epoch (§7.3).
PWC_RESULTS: Dict[str, Dict[str, Dict[str, float]]] = {
    '300w': {
        'farl-ep16': _300w((2.56, 3.53), (4.45, 6.42), (2.93, 4.11)),
        'farl-ep64': _300w((2.50, 3.46), (4.42, 6.38), (2.88, 4.05)),
    },
    'aflw19': {
        'farl-ep16': {'auc_box_7/full': 81.3, 'box/full': 1.334, 'diag/frontal': 0.821,
                      'diag/full': 0.943},
    },
}

#: the metric each benchmark reports as its headline (farl_protocol.md §7.2)
HEADLINE = {'lapa': 'mean_f1', 'celebamaskhq': 'mean_f1', 'aflw19': 'diag/full',
            '300w': 'inter_ocular/full', 'wflw': 'inter_ocular/all'}

_DATASET_ALIASES = {
    'lapa': 'lapa', 'celebamaskhq': 'celebamaskhq', 'celebm': 'celebamaskhq',
    'celebamask': 'celebamaskhq', '300w': '300w', 'ibug300w': '300w', 'wflw': 'wflw',
    'aflw19': 'aflw19', 'aflw': 'aflw19',
}
_RECIPE_ALIASES = {'farl': 'farl-ep16', 'farl-b': 'farl-ep16', 'farl-ep16': 'farl-ep16',
                   'farl-b-ep16': 'farl-ep16', 'farl-ep64': 'farl-ep64',
                   'farl-b-ep64': 'farl-ep64', 'farl-50m': 'farl-50m-ep16',
                   'farl-50m-ep16': 'farl-50m-ep16', 'farl-b-50m-ep16': 'farl-50m-ep16'}


def canonical_dataset(name: str) -> str:
    """``'LaPa'``, ``'CelebAMask-HQ'``, ``'celebm'``, ``'AFLW-19'`` ... -> the keys used here."""
    key = ''.join(ch for ch in str(name).lower() if ch.isalnum())
    if key not in _DATASET_ALIASES:
        raise KeyError(f'unknown benchmark {name!r}; known: {sorted(set(_DATASET_ALIASES))}')
    return _DATASET_ALIASES[key]


def canonical_recipe(recipe: str) -> str:
    """``'farl'`` -> ``'farl-ep16'``; other names (``'mcf'``, ``'flip80m-b16'``) unchanged."""
    key = str(recipe).lower().replace('_', '-')
    return _RECIPE_ALIASES.get(key, key)


def _tables(dataset: str) -> Dict[str, Dict[str, Dict[str, Any]]]:
    return PARSING_RESULTS[dataset] if dataset in PARSING_RESULTS else ALIGNMENT_RESULTS[dataset]


def paper_reference(dataset: str, recipe: str,
                    run: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The published run to compare a ``recipe`` with, or ``None`` when FaRL published none.

    ``run=None`` picks ``'paper'`` when the paper has the recipe, FaRL's ``'reproduced'`` run
    otherwise. The returned dict is the entry of :data:`PARSING_RESULTS` /
    :data:`ALIGNMENT_RESULTS` plus ``dataset``, ``recipe`` and ``run``.
    """
    dataset = canonical_dataset(dataset)
    recipe = canonical_recipe(recipe)
    runs = _tables(dataset).get(recipe)
    if not runs:
        return None
    if run is None:
        run = 'paper' if 'paper' in runs else 'reproduced'
    if run not in runs:
        raise KeyError(f'no {run!r} numbers for {recipe} on {dataset}; available: {sorted(runs)}')
    return dict(runs[run], dataset=dataset, recipe=recipe, run=run)


def higher_is_better(metric: str) -> bool:
    """F1, IoU, accuracy and AUC: higher is better; NME and failure rate: lower is better."""
    name = str(metric).lower()
    if name.startswith(('f1', 'iou', 'mean_f1', 'miou', 'aacc')) or 'auc' in name:
        return True
    return not any(token in name for token in ('nme', 'inter_ocular', 'inter_pupil', 'fr_',
                                               'box', 'diag'))


class ComparisonRow(NamedTuple):
    """One line of a comparison: ``diff = ours - paper`` (``None`` where either is missing)."""
    metric: str
    ours: Optional[float]
    paper: Optional[float]
    diff: Optional[float]


def _number(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def compare_with_paper(metrics: Mapping[str, Any],
                       dataset: str,
                       recipe: str,
                       run: Optional[str] = None,
                       class_names: Optional[Sequence[str]] = None,
                       key_map: Optional[Mapping[str, str]] = None,
                       scale: float = 1.0) -> List[ComparisonRow]:
    """Our metrics beside FaRL's published ones: rows ``(metric, ours, paper, diff)``.

    Args:
        metrics: our metrics (e.g. :class:`FaceParsingMetric`'s dict, or ``tools/test.py``'s).
        dataset, recipe, run: which published numbers (:func:`paper_reference`). For a recipe
            FaRL did not publish (``mcf``, ``flip80m-*``) the rows carry ``paper=None``.
        class_names: parsing only: our class names in label order. Default: the order of the
            ``f1/<name>`` keys in ``metrics`` (the metric writes them in label order). They are
            matched with FaRL's classes by index; the rows use our names (``f1/left_eye``).
        key_map: paper metric name -> our metric name, for metrics named differently (alignment).
        scale: multiplies our values first (e.g. 100 for an NME given as a fraction).

    Rows: for parsing the headline ``mean_f1``, then per-class F1 (every class, ours only where
    the paper gives none), then ``mIoU`` and ``aAcc`` (ours only); for alignment every published
    metric. A metric we do not have gets ``ours=None``.
    """
    dataset = canonical_dataset(dataset)
    reference = paper_reference(dataset, recipe, run)
    published = reference['metrics'] if reference else {}
    key_map = dict(key_map or {})

    def ours(key: str) -> Optional[float]:
        value = metrics.get(key_map.get(key, key))
        return None if _number(value) is None else _number(value) * scale

    def row(label: str, our_value: Optional[float], paper_value: Optional[float]):
        diff = None if our_value is None or paper_value is None else our_value - paper_value
        return ComparisonRow(label, our_value, paper_value, diff)

    if dataset not in PARSING_RESULTS:
        return [row(key_map.get(key, key), ours(key), value) for key, value in published.items()]

    farl_names = PARSING_CLASSES[dataset]
    names = list(class_names) if class_names is not None else [
        key[len('f1/'):] for key in metrics if str(key).startswith('f1/')]
    rows = [row('mean_f1', ours('mean_f1'), published.get('mean_f1'))]
    if names and len(names) != len(farl_names):
        raise ValueError(f'{len(names)} classes {names} but FaRL scores {dataset} with '
                         f'{len(farl_names)}: {list(farl_names)}')
    for index, farl_name in enumerate(farl_names):
        name = names[index] if names else farl_name
        rows.append(row(f'f1/{name}', ours(f'f1/{name}'), published.get(f'f1/{farl_name}')))
    for key in ('mIoU', 'aAcc'):
        rows.append(row(key, ours(key), published.get(key)))
    return rows
