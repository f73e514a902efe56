"""``report.md`` and ``report.json``: our test metrics beside FaRL's published numbers.

:func:`write_parsing_report` is what ``tools/test.py`` calls after a parsing test;
:func:`write_comparison_report` is the task-agnostic version (headline and every published metric
of any benchmark in :mod:`faceanalysis.evaluation.paper_results`), which an alignment report can
use as is or build on with the helpers of this module (:func:`markdown_table`, :func:`fmt`,
:func:`to_json_safe`, :func:`write_report_files`). :func:`write_alignment_report` is the alignment
report (every test subset and metric beside FaRL's, one CED PNG per subset).

The JSON file holds the same content as the markdown: our metrics, the comparison rows
``{metric, ours, paper, diff}`` (``diff = ours - paper``), the reference run and its source
section, and the ``extra`` information (checkpoints, config). NaN becomes ``null``.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .paper_results import (HEADLINE, PARSING_CLASSES, PARSING_RESULTS, README_RESULTS,
                            ComparisonRow, _tables, canonical_dataset, canonical_recipe,
                            compare_with_paper, higher_is_better, paper_reference)

__all__ = [
    'write_parsing_report', 'write_comparison_report', 'write_report_files', 'markdown_table',
    'fmt', 'to_json_safe', 'write_alignment_report'
]

DATASET_TITLES = {'lapa': 'LaPa', 'celebamaskhq': 'CelebAMask-HQ', '300w': '300W',
                  'wflw': 'WFLW', 'aflw19': 'AFLW-19'}


# ------------------------------------------------------------------------------------ helpers
def fmt(value: Any, digits: int = 2, signed: bool = False) -> str:
    """A number for a markdown cell; ``-`` for missing or NaN."""
    if value is None or isinstance(value, bool):
        return '-' if value is None else str(value)
    if isinstance(value, numbers.Integral) and not signed:
        return str(int(value))
    if isinstance(value, numbers.Number) or hasattr(value, 'item'):
        value = float(value)
        if math.isnan(value):
            return '-'
        return f'{value:+.{digits}f}' if signed else f'{value:.{digits}f}'
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (cells converted with ``str``; ``|`` escaped)."""

    def cell(value: Any) -> str:
        return str(value).replace('|', '\\|').replace('\n', ' ')

    lines = ['| ' + ' | '.join(cell(h) for h in header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines)


def to_json_safe(value: Any) -> Any:
    """Builtin types only (numpy/torch scalars and arrays converted), NaN and inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, ComparisonRow):
        return {k: to_json_safe(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple, set)):
        return [to_json_safe(v) for v in value]
    if hasattr(value, 'tolist') and not isinstance(value, (str, bytes)):
        return to_json_safe(value.tolist())
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def write_report_files(work_dir: str, markdown: str, payload: Mapping[str, Any],
                       stem: str = 'report') -> Tuple[str, str]:
    """Write ``<work_dir>/<stem>.md`` and ``<work_dir>/<stem>.json``; return both paths."""
    os.makedirs(work_dir, exist_ok=True)
    md_path = osp.join(work_dir, f'{stem}.md')
    json_path = osp.join(work_dir, f'{stem}.json')
    with open(md_path, 'w', encoding='utf-8') as f:
        f.write(markdown.rstrip('\n') + '\n')
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(to_json_safe(payload), f, indent=2, allow_nan=False)
        f.write('\n')
    return md_path, json_path


def _reference_lines(reference: Optional[Mapping[str, Any]], dataset: str,
                     recipe: str) -> List[str]:
    if reference is None:
        return [f'- Reference: FaRL published no numbers for `{recipe}` on '
                f'{DATASET_TITLES[dataset]}; the "paper" columns are empty. FaRL\'s own runs on '
                'this benchmark are listed at the end for context.']
    run = 'the paper\'s run' if reference['run'] == 'paper' else 'FaRL\'s reproduced run'
    epoch = f', best epoch {reference["epoch"]} on the test set' if reference['epoch'] else ''
    return [f'- Reference: `{reference["recipe"]}`, {run}{epoch} (EMA model; '
            'farl_protocol.md §7.3 best-epoch rule).',
            f'- Source: {reference["source"]}.']


def _extra_lines(extra: Mapping[str, Any]) -> List[str]:
    lines = []
    for key, value in extra.items():
        if key in ('best', 'last', 'class_names') or isinstance(value, (Mapping, list, tuple)):
            continue
        lines.append(f'- {key}: `{value}`')
    return lines


def _checkpoint_section(extra: Mapping[str, Any], reference: Optional[Mapping[str, Any]],
                        headline: str, digits: int) -> List[str]:
    """Best and last checkpoints (``extra['best']``, ``extra['last']``) against the reference."""
    entries = [(kind, extra[kind]) for kind in ('best', 'last') if extra.get(kind) is not None]
    if not entries:
        return []
    rows = []
    for kind, entry in entries:
        entry = dict(entry) if isinstance(entry, Mapping) else dict(checkpoint=entry)
        ours = entry.get(headline, (entry.get('metrics') or {}).get(headline))
        paper = paper_epoch = None
        if reference is not None:
            published = reference if kind == 'best' or not reference.get('last') \
                else reference['last']
            paper = published['metrics'].get(headline)
            paper_epoch = published.get('epoch')
        diff = None if ours is None or paper is None else float(ours) - paper
        rows.append([kind, f'`{entry.get("checkpoint", "-")}`', fmt(entry.get('epoch')),
                     fmt(ours, digits), fmt(paper, digits), fmt(paper_epoch),
                     fmt(diff, digits, signed=True)])
    return ['', '## Checkpoints', '',
            'FaRL reports the best epoch on the test set and we report it beside the last one '
            '(farl_protocol.md §7.3).', '',
            markdown_table(['checkpoint', 'file', 'epoch', f'{headline} (ours)',
                            f'{headline} (paper)', 'paper epoch', 'Δ (ours − paper)'], rows)]


def _published_runs(dataset: str, headline: str, digits: int) -> List[str]:
    rows = []
    for recipe, runs in _tables(dataset).items():
        for run, entry in runs.items():
            last = entry.get('last') or {}
            rows.append([recipe, run, fmt(entry.get('epoch')),
                         fmt(entry['metrics'].get(headline), digits),
                         fmt(README_RESULTS.get(dataset, {}).get(recipe, {}).get(run), digits),
                         fmt(last.get('epoch')),
                         fmt((last.get('metrics') or {}).get(headline), digits)])
    return ['', f'## FaRL\'s published {headline} on {DATASET_TITLES[dataset]}', '',
            markdown_table(['recipe', 'run', 'best epoch', headline, 'README', 'last epoch',
                            f'{headline} (last)'], rows)]


# ------------------------------------------------------------------------------------- parsing
def write_parsing_report(metrics: Mapping[str, Any],
                         dataset: str,
                         recipe: str,
                         work_dir: str,
                         extra: Optional[Mapping[str, Any]] = None,
                         run: Optional[str] = None,
                         stem: str = 'report') -> Tuple[str, str]:
    """Write ``report.md`` and ``report.json`` of a face-parsing test into ``work_dir``.

    Args:
        metrics: :class:`FaceParsingMetric`'s results (``mean_f1``, ``f1/<class>``,
            ``iou/<class>``, ``mIoU``, ``aAcc``, optional ``f1_group/<name>``); extra keys are
            kept in the JSON file.
        dataset: ``'lapa'`` or ``'celebamaskhq'`` (aliases such as ``'celebm'`` accepted).
        recipe: the backbone recipe (``'farl'``, ``'farl-ep64'``, ``'mcf'`` ...); see
            :func:`paper_reference` for which published run it is compared with.
        work_dir: where the two files go (created if needed).
        extra: optional run information: ``best`` / ``last`` (each ``dict(checkpoint=...,
            epoch=..., mean_f1=...)`` or with a full ``metrics`` dict), ``class_names`` (our class
            order; default the order of the ``f1/`` keys), and any scalar (``config``,
            ``checkpoint``) listed in the header. Everything goes into the JSON file.
        run: ``'paper'`` or ``'reproduced'``; default the paper's run when there is one.

    Returns:
        ``(md_path, json_path)``.
    """
    dataset = canonical_dataset(dataset)
    if dataset not in PARSING_RESULTS:
        raise ValueError(f'{dataset} is not a parsing benchmark; use write_comparison_report')
    recipe = canonical_recipe(recipe)
    extra = dict(extra or {})
    reference = paper_reference(dataset, recipe, run)
    rows = compare_with_paper(metrics, dataset, recipe, run=run,
                              class_names=extra.get('class_names'))
    by_metric = {row.metric: row for row in rows}
    farl_names = PARSING_CLASSES[dataset]
    class_rows = [row for row in rows if row.metric.startswith('f1/')]
    num_fg = len(farl_names) - 1

    md = [f'# Face parsing: {DATASET_TITLES[dataset]}, `{recipe}`', '']
    md += _reference_lines(reference, dataset, recipe)
    md += _extra_lines(extra)
    md += ['- F1 = 2TP/(2TP+FP+FN) from one confusion matrix over the test set in original-image '
           'space, in %; `mean_f1` is the mean over the foreground classes (farl_protocol.md '
           '§7.1). mIoU is over all classes, background included (mmseg\'s definition; FaRL '
           'reports no IoU).', '',
           '## Headline', '']
    head_rows = []
    for key, label in (('mean_f1', f'mean F1, {num_fg} foreground classes'),
                       ('mIoU', 'mIoU, all classes'), ('aAcc', 'pixel accuracy')):
        row = by_metric[key]
        head_rows.append([f'{label} (`{key}`)', fmt(row.ours), fmt(row.paper),
                          fmt(row.diff, signed=True)])
    md += [markdown_table(['metric', 'ours', 'paper', 'Δ (ours − paper)'], head_rows), '',
           '## Per-class F1', '']
    per_class = []
    for index, row in enumerate(class_rows):
        name = row.metric[len('f1/'):]
        note = ' (not in the mean)' if index == 0 else ''
        per_class.append([f'{name}{note}', farl_names[index], fmt(row.ours), fmt(row.paper),
                          fmt(row.diff, signed=True), fmt(metrics.get(f'iou/{name}'))])
    md.append(markdown_table(['class', 'FaRL name', 'F1 (ours)', 'F1 (paper)',
                              'Δ (ours − paper)', 'IoU (ours)'], per_class))
    groups = [key[len('f1_group/'):] for key in metrics if str(key).startswith('f1_group/')]
    if groups:
        md += ['', '## Merged classes', '',
               'Each group scored as one class of the confusion matrix with its members merged '
               '(FaRL publishes no group numbers).', '',
               markdown_table(['group', 'F1 (ours)', 'IoU (ours)'],
                              [[g, fmt(metrics.get(f'f1_group/{g}')),
                                fmt(metrics.get(f'iou_group/{g}'))] for g in groups])]
    md += _checkpoint_section(extra, reference, 'mean_f1', 2)
    md += _published_runs(dataset, 'mean_f1', 2)

    payload = dict(task='face_parsing', dataset=dataset, recipe=recipe,
                   reference=_reference_payload(reference), metrics=dict(metrics),
                   comparison=[row._asdict() for row in rows], extra=extra)
    return write_report_files(work_dir, '\n'.join(md), payload, stem)


def _reference_payload(reference: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if reference is None:
        return None
    return {key: reference[key] for key in ('dataset', 'recipe', 'run', 'source', 'epoch',
                                            'metrics', 'last')}


# ------------------------------------------------------------------------------------- generic
def write_comparison_report(metrics: Mapping[str, Any],
                            dataset: str,
                            recipe: str,
                            work_dir: str,
                            extra: Optional[Mapping[str, Any]] = None,
                            run: Optional[str] = None,
                            key_map: Optional[Mapping[str, str]] = None,
                            scale: float = 1.0,
                            digits: int = 3,
                            title: Optional[str] = None,
                            stem: str = 'report') -> Tuple[str, str]:
    """A report for any benchmark of :mod:`paper_results`: every published metric, ours beside it.

    ``key_map`` and ``scale`` are passed to :func:`compare_with_paper` (our metric names and
    units, e.g. ``scale=100`` for an NME given as a fraction). Lower-is-better metrics (NME, FR)
    are marked in the table; ``Δ`` is always ``ours − paper``.
    """
    dataset = canonical_dataset(dataset)
    recipe = canonical_recipe(recipe)
    extra = dict(extra or {})
    reference = paper_reference(dataset, recipe, run)
    rows = compare_with_paper(metrics, dataset, recipe, run=run, key_map=key_map, scale=scale)
    headline = HEADLINE[dataset]
    bold = (key_map or {}).get(headline, headline)
    md = [f'# {title or "Report"}: {DATASET_TITLES[dataset]}, `{recipe}`', '']
    md += _reference_lines(reference, dataset, recipe)
    md += _extra_lines(extra)
    md += ['', '## Metrics', '',
           markdown_table(['metric', 'better', 'ours', 'paper', 'Δ (ours − paper)'],
                          [[f'**{row.metric}**' if row.metric == bold else row.metric,
                            '↑' if higher_is_better(row.metric) else '↓', fmt(row.ours, digits),
                            fmt(row.paper, digits), fmt(row.diff, digits, signed=True)]
                           for row in rows])]
    md += _checkpoint_section(extra, reference, headline, digits)
    md += _published_runs(dataset, headline, digits)
    payload = dict(dataset=dataset, recipe=recipe, headline=headline,
                   reference=_reference_payload(reference), metrics=dict(metrics),
                   comparison=[row._asdict() for row in rows], extra=extra)
    return write_report_files(work_dir, '\n'.join(md), payload, stem)


# ------------------------------------------------------------------------------------ alignment
def _ced_groups(ced_curves: Any) -> Dict[str, Dict[str, Any]]:
    """``{subset: {curve name: curve}}`` from :attr:`FaceAlignmentMetric.ced_curves`, its
    ``alignment_ced.json`` (path or loaded) or ``{'<name>/<subset>': (xaxis, ced)}``."""
    if isinstance(ced_curves, (str, os.PathLike)):
        with open(ced_curves, encoding='utf-8') as f:
            ced_curves = json.load(f)
    if isinstance(ced_curves, Mapping) and isinstance(ced_curves.get('curves'), Mapping):
        ced_curves = ced_curves['curves']
    groups: Dict[str, Dict[str, Any]] = {}
    for key, curve in (ced_curves or {}).items():
        name, _, subset = str(key).rpartition('/')
        if not name:
            name, subset = subset, 'all curves'
        if isinstance(curve, Mapping) and curve.get('subset'):
            subset = str(curve['subset'])
        groups.setdefault(subset, {})[name] = curve
    return groups


def _file_stem(name: str) -> str:
    return ''.join(ch if ch.isalnum() or ch in '-_.' else '_' for ch in name)


def write_alignment_report(metrics: Mapping[str, Any],
                           dataset: str,
                           recipe: str,
                           work_dir: str,
                           ced_curves: Any = None,
                           extra: Optional[Mapping[str, Any]] = None,
                           run: Optional[str] = None,
                           digits: int = 3,
                           stem: str = 'report') -> Tuple[str, str]:
    """Write ``report.md``, ``report.json`` and one CED PNG per test subset of an alignment test.

    Args:
        metrics: :class:`FaceAlignmentMetric`'s results (x100: ``nme_<norm>/<subset>``,
            ``auc_<norm>_<thr>/<subset>``, ``fr_...``, ``count/<subset>``, ``nme``).
        dataset: ``'300w'``, ``'wflw'`` or ``'aflw19'`` (aliases accepted).
        recipe: the backbone recipe; see :func:`paper_reference` for the published run used.
        work_dir: where the files go (created if needed).
        ced_curves: the metric's :attr:`~FaceAlignmentMetric.ced_curves` (``'<curve>/<subset>'
            -> dict(threshold=, xaxis=, ced=, ...)``), the path of its ``alignment_ced.json``,
            or ``{'<curve>/<subset>': (xaxis, ced)}``. One ``ced_<subset>.png`` is drawn per
            subset (every curve of that subset in it) and the data is copied to
            ``ced_curves.json``.
        extra: run information as for :func:`write_parsing_report` (``best`` / ``last``
            entries may carry our key names, e.g. ``nme`` or ``nme_diag/full``).
        run: ``'paper'`` or ``'reproduced'``; default the paper's run when there is one.

    Every subset gets a table with each of our metrics beside the published one (matched with
    :func:`alignment_key_map`), and the published metrics we lack. Returns ``(md, json)`` paths.
    """
    from .metrics.face_alignment_metric import alignment_key_map
    from .paper_results import ALIGNMENT_RESULTS
    from ..visualization.ced import plot_ced

    dataset = canonical_dataset(dataset)
    if dataset not in ALIGNMENT_RESULTS:
        raise ValueError(f'{dataset} is not an alignment benchmark; use write_parsing_report')
    recipe = canonical_recipe(recipe)
    extra = dict(extra or {})
    reference = paper_reference(dataset, recipe, run)
    published_keys = sorted({key for runs in ALIGNMENT_RESULTS[dataset].values()
                             for entry in runs.values() for key in entry['metrics']})
    key_map = alignment_key_map(metrics, published_keys)
    rows = compare_with_paper(metrics, dataset, recipe, run=run, key_map=key_map)
    by_ours = {row.metric: row for row in rows}
    headline = HEADLINE[dataset]
    headline_ours = key_map.get(headline, headline)

    # subsets in the metric's order; metric names per subset
    per_subset: Dict[str, List[str]] = {}
    for key in list(metrics) + [row.metric for row in rows]:
        name, _, subset = str(key).rpartition('/')
        if name and not name.startswith('count'):
            names = per_subset.setdefault(subset, [])
            if name not in names:
                names.append(name)

    os.makedirs(work_dir, exist_ok=True)
    ced_plots: Dict[str, str] = {}
    groups = _ced_groups(ced_curves)
    for subset, curves in groups.items():
        thresholds = [float(c['threshold']) for c in curves.values()
                      if isinstance(c, Mapping) and c.get('threshold') is not None]
        filename = f'ced_{_file_stem(subset)}.png'
        labelled = {(f'{c["norm"]}, threshold {float(c["threshold"]):g}' if isinstance(
            c, Mapping) and c.get('norm') and c.get('threshold') is not None else name): c
                    for name, c in curves.items()}
        plot_ced(labelled, osp.join(work_dir, filename), max(thresholds) if thresholds else None,
                 title=f'{DATASET_TITLES[dataset]} {subset}: CED, {recipe}')
        ced_plots[subset] = filename
    if groups:
        with open(osp.join(work_dir, 'ced_curves.json'), 'w', encoding='utf-8') as f:
            json.dump(to_json_safe({f'{name}/{subset}': curve for subset, curves in groups.items()
                                    for name, curve in curves.items()}), f)

    md = [f'# Face alignment: {DATASET_TITLES[dataset]}, `{recipe}`', '']
    md += _reference_lines(reference, dataset, recipe)
    md += _extra_lines(extra)
    md += ['- Units: NME, AUC and FR x100 (percent), as FaRL\'s tables. NME per image = mean '
           'landmark error in original-image pixels / normaliser, averaged over images: '
           '`inter_ocular` (outer eye corners), `inter_pupil` (pupils), `box` √(w·h) and `diag` '
           '√(w²+h²) of the ground-truth box. AUC = Simpson integral of the CED on a 1e-4 grid '
           '/ threshold, FR = 1 − CED(last grid point) (farl_protocol.md §7.2).', '',
           '## Headline', '']
    head = by_ours.get(headline_ours)
    head_ours = metrics.get(headline_ours)
    md.append(markdown_table(
        ['metric', 'ours', 'paper', 'Δ (ours − paper)'],
        [[f'`{headline_ours}` (FaRL `{headline}`)', fmt(head_ours, digits),
          fmt(head.paper if head else None, digits),
          fmt(head.diff if head else None, digits, signed=True)]]))

    inverse = {ours: paper for paper, ours in key_map.items()}
    subset_payload: Dict[str, Dict[str, Any]] = {}
    for subset, names in per_subset.items():
        count = metrics.get(f'count/{subset}')
        md += ['', f'## {subset}' + (f' ({fmt(count)} images)' if count is not None else ''), '']
        table, entries = [], {}
        for name in names:
            key = f'{name}/{subset}'
            row = by_ours.get(key)
            ours = metrics.get(key)
            paper = row.paper if row else None
            diff = row.diff if row else None
            entries[key] = dict(ours=ours, paper=paper, diff=diff, paper_key=inverse.get(key))
            label = f'**{key}**' if key == headline_ours else key
            table.append([label, '↑' if higher_is_better(name) else '↓', fmt(ours, digits),
                          fmt(paper, digits), fmt(diff, digits, signed=True)])
        md.append(markdown_table(['metric', 'better', 'ours', 'paper', 'Δ (ours − paper)'],
                                 table))
        if subset in ced_plots:
            md += ['', f'![CED {subset}]({ced_plots[subset]})']
        subset_payload[subset] = dict(count=count, metrics=entries,
                                      ced_plot=ced_plots.get(subset))
    for subset in ced_plots:
        if subset not in per_subset:
            md += ['', f'## {subset}', '', f'![CED {subset}]({ced_plots[subset]})']

    ckpt_extra = dict(extra)
    for kind in ('best', 'last'):
        entry = extra.get(kind)
        if isinstance(entry, Mapping) and headline not in entry:
            inner = entry.get('metrics') or {}
            value = next((src[k] for src in (entry, inner) for k in (headline_ours, 'nme')
                          if src.get(k) is not None), None)
            ckpt_extra[kind] = dict(entry, **({headline: value} if value is not None else {}))
    md += _checkpoint_section(ckpt_extra, reference, headline, digits)
    md += _published_runs(dataset, headline, digits)

    payload = dict(task='face_alignment', dataset=dataset, recipe=recipe, headline=headline,
                   headline_key=headline_ours, units='x100 (NME, AUC, FR in percent)',
                   reference=_reference_payload(reference), metrics=dict(metrics),
                   comparison=[row._asdict() for row in rows], subsets=subset_payload,
                   ced_plots=ced_plots, ced_data='ced_curves.json' if groups else None,
                   extra=extra)
    return write_report_files(work_dir, '\n'.join(md), payload, stem)
