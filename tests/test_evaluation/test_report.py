"""paper_results (FaRL's numbers, farl_protocol.md §7.4-§7.6) and report.md / report.json."""
import json
import math

import pytest

from faceanalysis.datasets import LAPA_CLASSES
from faceanalysis.evaluation import (ALIGNMENT_RESULTS, PARSING_CLASSES, PARSING_RESULTS,
                                     compare_with_paper, paper_reference, write_parsing_report)
from faceanalysis.evaluation.paper_results import README_RESULTS, canonical_dataset
from faceanalysis.evaluation.report import write_comparison_report

# farl_protocol.md §7.5: LaPa, paper ep16, epoch 150 (x100)
LAPA_PAPER = dict(zip(LAPA_CLASSES, (99.25, 98.00, 92.70, 92.65, 93.97, 93.91, 97.92, 90.15,
                                     91.74, 91.21, 96.52)))


def lapa_metrics(offset=-0.5):
    """Our LaPa metrics in the metric's key order: every class `offset` from the paper."""
    metrics = {'mean_f1': 93.88 + offset, 'mIoU': 88.0, 'aAcc': 97.5}
    metrics.update({f'f1/{name}': value + offset for name, value in LAPA_PAPER.items()})
    metrics.update({f'iou/{name}': 80.0 for name in LAPA_CLASSES})
    metrics.update({'f1_group/eyes': 94.2, 'iou_group/eyes': 89.0})
    return metrics


def test_paper_numbers_are_consistent():
    """Per-class numbers average to the published mean; every recipe of §7.4/§7.5 is there."""
    for dataset, num_fg in (('lapa', 10), ('celebamaskhq', 18)):
        published = PARSING_RESULTS[dataset]['farl-ep16']['paper']['metrics']
        fg = [published[f'f1/{name}'] for name in PARSING_CLASSES[dataset][1:]]
        assert len(fg) == num_fg
        assert sum(fg) / num_fg == pytest.approx(published['mean_f1'], abs=0.005)
        for recipe, runs in README_RESULTS[dataset].items():  # README = best-epoch logs
            for run, value in runs.items():
                assert PARSING_RESULTS[dataset][recipe][run]['metrics']['mean_f1'] == value
    assert PARSING_RESULTS['celebamaskhq']['farl-ep16']['paper']['metrics']['f1/neckl'] == 69.71
    assert PARSING_RESULTS['lapa']['farl-ep16']['paper']['last'] == dict(
        epoch=300, metrics=dict(mean_f1=93.81))
    assert ALIGNMENT_RESULTS['wflw']['farl-ep16']['paper']['metrics'][
        'auc_inter_ocular_10/all'] == 61.16
    assert ALIGNMENT_RESULTS['300w']['farl-ep64']['reproduced']['metrics'][
        'inter_ocular/full'] == 2.884
    assert ALIGNMENT_RESULTS['aflw19']['farl-ep16']['paper']['metrics']['diag/full'] == 0.943
    assert json.loads(json.dumps(PARSING_RESULTS)) == PARSING_RESULTS  # plain data
    assert json.loads(json.dumps(ALIGNMENT_RESULTS)) == ALIGNMENT_RESULTS


def test_reference_selection():
    assert paper_reference('LaPa', 'farl')['run'] == 'paper'
    assert paper_reference('celebm', 'farl-ep64')['run'] == 'reproduced'  # no paper run
    assert paper_reference('CelebAMask-HQ', 'farl', run='reproduced')['metrics'] == {
        'mean_f1': 89.65}
    assert paper_reference('lapa', 'flip80m-b16') is None
    assert canonical_dataset('AFLW-19') == 'aflw19'
    with pytest.raises(KeyError, match='unknown benchmark'):
        paper_reference('helen', 'farl')


def test_compare_with_paper_rows():
    rows = compare_with_paper(lapa_metrics(), 'lapa', 'farl')
    assert [row.metric for row in rows] == (['mean_f1'] + [f'f1/{n}' for n in LAPA_CLASSES] +
                                            ['mIoU', 'aAcc'])
    metric, ours, paper, diff = rows[0]
    assert (metric, paper) == ('mean_f1', 93.88)
    assert ours == pytest.approx(93.38) and diff == pytest.approx(-0.5)
    by_metric = {row.metric: row for row in rows}
    # our 'left_eyebrow' (label 2) is FaRL's 'lb' (label 2): matched by index
    assert by_metric['f1/left_eyebrow'].paper == 92.70
    assert by_metric['f1/left_eyebrow'].diff == pytest.approx(-0.5)
    assert by_metric['mIoU'].paper is None and by_metric['mIoU'].diff is None
    # a reproduced run with two per-class numbers only
    rows = {row.metric: row for row in compare_with_paper(lapa_metrics(), 'lapa', 'farl',
                                                          run='reproduced')}
    assert rows['f1/skin'].paper == 97.98 and rows['f1/nose'].paper is None
    with pytest.raises(ValueError, match='FaRL scores lapa with 11'):
        compare_with_paper({'f1/a': 1.0, 'f1/b': 2.0}, 'lapa', 'farl')
    # alignment: our names and units mapped onto FaRL's
    rows = compare_with_paper({'nme_diag': 0.00950}, 'aflw19', 'farl-ep16',
                              key_map={'diag/full': 'nme_diag'}, scale=100)
    assert rows[0].metric == 'nme_diag' and rows[0].diff == pytest.approx(0.007)


def test_parsing_report_files(tmp_path):
    extra = dict(config='configs/parsing/lapa_farl.py',
                 best=dict(checkpoint='best_mean_f1_epoch_140.pth', epoch=140, mean_f1=93.38),
                 last=dict(checkpoint='epoch_300.pth', epoch=300,
                           metrics=dict(mean_f1=93.30)))
    md_path, json_path = write_parsing_report(lapa_metrics(), 'lapa', 'farl', str(tmp_path),
                                              extra=extra)
    assert md_path == str(tmp_path / 'report.md') and json_path == str(tmp_path / 'report.json')
    md = (tmp_path / 'report.md').read_text()
    assert '| mean F1, 10 foreground classes (`mean_f1`) | 93.38 | 93.88 | -0.50 |' in md
    assert '| left_eyebrow | lb | 92.20 | 92.70 | -0.50 | 80.00 |' in md
    assert '| background (not in the mean) | background | 98.75 | 99.25 | -0.50 |' in md
    assert '| mIoU, all classes (`mIoU`) | 88.00 | - | - |' in md
    assert '| eyes | 94.20 | 89.00 |' in md
    # best vs the paper's best epoch, last vs the paper's last epoch (§7.3)
    assert '| best | `best_mean_f1_epoch_140.pth` | 140 | 93.38 | 93.88 | 150 | -0.50 |' in md
    assert '| last | `epoch_300.pth` | 300 | 93.30 | 93.81 | 300 | -0.51 |' in md
    assert '§7.5' in md and 'configs/parsing/lapa_farl.py' in md

    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['dataset'] == 'lapa' and report['recipe'] == 'farl-ep16'
    assert report['reference']['run'] == 'paper' and report['reference']['epoch'] == 150
    rows = {row['metric']: row for row in report['comparison']}
    assert rows['mean_f1']['paper'] == 93.88
    assert rows['mean_f1']['diff'] == pytest.approx(-0.5)
    assert rows['f1/hair'] == dict(metric='f1/hair', ours=pytest.approx(96.02), paper=96.52,
                                   diff=pytest.approx(-0.5))
    assert report['metrics']['f1_group/eyes'] == 94.2
    assert report['extra']['best']['epoch'] == 140


def test_report_without_published_numbers_and_nan(tmp_path):
    """mcf on CelebAMask-HQ: no paper columns; a NaN (absent class) becomes null / '-'."""
    classes = ['background'] + [f'c{i}' for i in range(1, 19)]
    metrics = {'mean_f1': 80.0, 'mIoU': 70.0, 'aAcc': 95.0}
    metrics.update({f'f1/{name}': 80.0 for name in classes})
    metrics['f1/c18'] = math.nan
    md_path, json_path = write_parsing_report(metrics, 'CelebAMask-HQ', 'mcf', str(tmp_path))
    md = open(md_path).read()
    assert 'FaRL published no numbers for `mcf`' in md
    assert '| c18 | neckl | - | - | - | - |' in md
    assert '| farl-ep64 | reproduced | 30 | 89.57 | 89.57 | 300 | 88.58 |' in md
    report = json.load(open(json_path))
    assert report['reference'] is None
    assert report['metrics']['f1/c18'] is None
    assert all(row['paper'] is None for row in report['comparison'])


def test_alignment_comparison_report(tmp_path):
    md_path, json_path = write_comparison_report(
        {'inter_ocular/full': 2.95, 'inter_ocular/common': 2.6}, '300W', 'farl-ep64',
        str(tmp_path), title='Face alignment')
    md = open(md_path).read()
    assert '| **inter_ocular/full** | ↓ | 2.950 | 2.884 | +0.066 |' in md
    assert '| inter_ocular/common | ↓ | 2.600 | 2.496 | +0.104 |' in md
    report = json.load(open(json_path))
    assert report['headline'] == 'inter_ocular/full'
    assert report['reference']['run'] == 'reproduced'
