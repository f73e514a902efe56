"""FaceAlignmentMetric (FaRL's NME / AUC / FR, subsets in one run), its report and CED plot."""
import json
import math

import numpy as np
import pytest
from mmengine.structures import InstanceData

from faceanalysis.evaluation import (ALIGNMENT_RESULTS, FaceAlignmentMetric, alignment_key_map,
                                     write_alignment_report)
from faceanalysis.evaluation.functional import (ALIGNMENT_NORM_INDICES, box_diag_norm,
                                                box_norm, ced_auc_fr, inter_ocular_norm,
                                                inter_pupil_norm, nme_per_image)
from faceanalysis.registry import METRICS
from faceanalysis.visualization import plot_ced

NUM_KPTS = {'300w': 68, 'wflw': 98, 'aflw19': 19}


def make_faces(dataset, n, seed=0, noise=3.0):
    """``n`` random faces (landmarks in a box) and noisy predictions, original pixels."""
    rng = np.random.RandomState(seed)
    k = NUM_KPTS[dataset]
    x1y1 = rng.uniform(0, 200, (n, 1, 2))
    size = rng.uniform(80, 240, (n, 1, 1))
    gt = x1y1 + rng.uniform(0, 1, (n, k, 2)) * size
    for key in ('inter_ocular', 'inter_pupil'):  # eyes 0.4 box sizes apart, as a face
        for ids, x in zip(ALIGNMENT_NORM_INDICES[dataset][key], (0.3, 0.7)):
            ids = list(ids)
            gt[:, ids] = x1y1 + (np.array([x, 0.4]) + rng.uniform(-0.04, 0.04, (n, len(ids), 2))
                                 ) * size
    pred = gt + rng.normal(0, noise, gt.shape) * rng.uniform(0.2, 3, (n, 1, 1))
    boxes = np.concatenate([x1y1[:, 0], x1y1[:, 0] + size[:, 0] * rng.uniform(0.9, 1.2, (n, 2))],
                           1)
    return pred, gt, boxes


def dict_sample(pred, gt, box, subset=None, index=0):
    """A sample as MMEngine's Evaluator passes it (``PoseDataSample.to_dict()``)."""
    sample = dict(img_path=f'img_{index}.jpg',
                  pred_instances=dict(keypoints=pred[None].astype(np.float32)),
                  gt_instances=dict(keypoints=gt[None], bboxes=box[None],
                                    keypoints_visible=np.ones((1, len(gt)))))
    if subset is not None:
        sample['subsets'] = subset
    return sample


def evaluate(metric, samples, batch=3):
    for start in range(0, len(samples), batch):
        metric.process(None, samples[start:start + batch])
    return metric.evaluate(len(samples))


def expected_nmes(dataset, pred, gt, boxes):
    pred = pred.astype(np.float32).astype(np.float64)  # the samples hold float32 predictions
    return dict(inter_ocular=nme_per_image(pred, gt, inter_ocular_norm(gt, dataset)),
                inter_pupil=nme_per_image(pred, gt, inter_pupil_norm(gt, dataset)),
                box=nme_per_image(pred, gt, box_norm(boxes)),
                diag=nme_per_image(pred, gt, box_diag_norm(boxes)))


def test_300w_subsets_in_one_run():
    """common / challenging tags: every normaliser per subset and over the full set, x100."""
    pred, gt, boxes = make_faces('300w', 10)
    tags = ['common'] * 6 + [('full', 'challenging')] * 4  # the 300W reader's full-split tags
    samples = [dict_sample(pred[i], gt[i], boxes[i], tags[i], i) for i in range(10)]
    metric = METRICS.build(dict(type='FaceAlignmentMetric', dataset='300w'))
    metrics = evaluate(metric, samples)
    ref = expected_nmes('300w', pred, gt, boxes)
    members = dict(full=np.arange(10), common=np.arange(6), challenging=np.arange(6, 10))
    for subset, index in members.items():
        assert metrics[f'count/{subset}'] == len(index)
        for norm in ('inter_ocular', 'inter_pupil', 'box', 'diag'):
            assert metrics[f'nme_{norm}/{subset}'] == pytest.approx(
                100 * ref[norm][index].mean(), rel=1e-12)
    assert metrics['nme'] == metrics['nme_inter_ocular/full']
    assert not any(key.startswith(('auc', 'fr')) for key in metrics)  # 300W: NME only
    assert list(metric.ced_curves) == ['inter_ocular_10/full', 'inter_ocular_10/common',
                                       'inter_ocular_10/challenging']


@pytest.mark.parametrize('dataset,indices', [('300w', [36, 45]), ('wflw', [60, 72])])
def test_inter_ocular_equals_mmpose_nme(dataset, indices):
    """Same samples into mmpose's NME(keypoint_distance, keypoint_indices): equal (fractions)."""
    from mmpose.evaluation.metrics import NME
    pred, gt, boxes = make_faces(dataset, 7, seed=3)
    samples = [dict_sample(pred[i], gt[i], boxes[i], index=i) for i in range(7)]
    ours = FaceAlignmentMetric(dataset=dataset, norms=('inter_ocular',))
    mmpose_nme = NME(norm_mode='keypoint_distance', keypoint_indices=indices)
    mmpose_nme.dataset_meta = dict(dataset_name=dataset, keypoint_id2name={
        i: f'kpt-{i}' for i in range(NUM_KPTS[dataset])})
    ours_metrics = evaluate(ours, samples)
    theirs = evaluate(mmpose_nme, samples)
    # mmpose keeps the per-keypoint distances in float32, hence rel 1e-6
    assert ours_metrics['nme'] / 100 == pytest.approx(theirs['NME'], rel=1e-6)
    assert 0.01 < theirs['NME'] < 0.5


def test_wflw_overlapping_subsets_auc_fr():
    """An image may be in several WFLW subsets; AUC/FR@0.1 (inter-ocular) per subset, x100."""
    pred, gt, boxes = make_faces('wflw', 9, seed=5, noise=6.0)
    tags = [['largepose', 'occlusion'], [], ('test', 'test_blur'), ['largepose'], 'occlusion',
            None, 'test', ['test_blur', 'largepose'], []]  # the readers' tags: 'test_<subset>'
    samples = [dict_sample(pred[i], gt[i], boxes[i], tags[i], i) for i in range(9)]
    metric = METRICS.build(dict(type='FaceAlignmentMetric', dataset='wflw', norms=(
        'inter_ocular', 'inter_pupil'), subsets=['largepose', 'expression', 'occlusion', 'blur']))
    metrics = evaluate(metric, samples, batch=4)
    ref = expected_nmes('wflw', pred, gt, boxes)['inter_ocular']
    members = dict(all=range(9), largepose=[0, 3, 7], occlusion=[0, 4], blur=[2, 7])
    for subset, index in members.items():
        index = list(index)
        auc, fr, _, _ = ced_auc_fr(ref[index], 0.1)
        assert metrics[f'nme_inter_ocular/{subset}'] == pytest.approx(100 * ref[index].mean())
        assert metrics[f'auc_inter_ocular_10/{subset}'] == pytest.approx(100 * auc)
        assert metrics[f'fr_inter_ocular_10/{subset}'] == pytest.approx(100 * fr)
        curve = metric.ced_curves[f'inter_ocular_10/{subset}']
        assert len(curve['xaxis']) == 1001 and curve['auc'] == pytest.approx(100 * auc)
    assert 0 < metrics['fr_inter_ocular_10/all'] < 100  # the noise makes some failures
    assert metrics['count/expression'] == 0 and math.isnan(metrics['nme_inter_ocular/expression'])
    assert metrics['nme'] == metrics['nme_inter_ocular/all']
    with pytest.raises(ValueError, match='unknown subset'):
        metric.process(None, [dict_sample(pred[0], gt[0], boxes[0], ['test_makeup'])])
    with pytest.raises(ValueError, match='whole set'):
        FaceAlignmentMetric(dataset='wflw', subsets=['test', 'blur'])


def test_aflw_box_auc_and_data_sample_inputs(tmp_path):
    """AFLW-19 from mmpose's dataset_meta name, PoseDataSample inputs, face_box and
    gt_keypoints taking precedence, and the CED / per-image dumps."""
    from mmpose.structures import PoseDataSample
    pred, gt, boxes = make_faces('aflw19', 6, seed=7)
    samples = []
    for i in range(6):
        sample = PoseDataSample(metainfo=dict(img_path=f'{i}.jpg', face_box=boxes[i],
                                              gt_keypoints=gt[i],
                                              subsets=('test', 'test_frontal') if i % 2
                                              else ('test',)))
        sample.pred_instances = InstanceData(keypoints=pred[i][None].astype(np.float32))
        # decoys the metric must not read: transformed landmarks and a wrong box
        sample.gt_instances = InstanceData(keypoints=gt[i][None] * 0.5,
                                           bboxes=boxes[i][None] * 0.5)
        samples.append(sample)
    metric = METRICS.build(dict(type='FaceAlignmentMetric', output_dir=str(tmp_path)))
    metric.dataset_meta = dict(dataset_name='aflw')
    metrics = evaluate(metric, samples, batch=2)
    ref = expected_nmes('aflw19', pred, gt, boxes)
    for subset, index in (('full', list(range(6))), ('frontal', [1, 3, 5])):
        for norm in ('inter_ocular', 'inter_pupil', 'box', 'diag'):
            assert metrics[f'nme_{norm}/{subset}'] == pytest.approx(100 * ref[norm][index].mean())
        auc, fr, xaxis, _ = ced_auc_fr(ref['box'][index], 0.07)
        assert len(xaxis) == 702
        assert metrics[f'auc_box_7/{subset}'] == pytest.approx(100 * auc)
        assert metrics[f'fr_box_7/{subset}'] == pytest.approx(100 * fr)
    assert metrics['nme'] == metrics['nme_diag/full']  # AFLW headline: NME_diag (full)
    assert set(metric.ced_curves) == {'box_7/full', 'box_7/frontal', 'diag_10/full',
                                      'diag_10/frontal'}
    dumped = json.loads((tmp_path / 'alignment_ced.json').read_text())
    assert len(dumped['curves']['box_7/full']['xaxis']) == 702
    images = json.loads((tmp_path / 'alignment_per_image.json').read_text())['images']
    assert [im['name'] for im in images] == [f'{i}.jpg' for i in range(6)]
    assert images[1]['subsets'] == ['frontal']
    assert images[0]['nme']['diag'] == pytest.approx(ref['diag'][0])


def test_ground_truth_sources_and_errors():
    pred, gt, boxes = make_faces('aflw19', 1, seed=9)
    pred, gt, box = pred[0], gt[0], boxes[0]
    ref = expected_nmes('aflw19', pred[None], gt[None], box[None])
    metric = FaceAlignmentMetric(dataset='aflw19', norms=('inter_ocular', 'box'),
                                 main_norm='box')
    # gt_instances.keypoints is preferred to raw_ann_info (the file's raw annotation) ...
    flat = np.concatenate([gt, np.ones((19, 1))], 1).reshape(-1).tolist()
    sample = dict_sample(pred, gt, box)
    sample['raw_ann_info'] = dict(keypoints=(np.array(flat) * 2).tolist())
    metric.process(None, [sample])
    assert metric.results[-1]['nme']['inter_ocular'] == pytest.approx(ref['inter_ocular'][0])
    assert metric.results[-1]['nme']['box'] == pytest.approx(ref['box'][0])
    # ... which is read when nothing else is there: mmpose's flat [x, y, v, ...] list
    sample = dict_sample(pred, gt, box)
    del sample['gt_instances']['keypoints']
    sample['raw_ann_info'] = dict(keypoints=flat)
    metric.process(None, [sample])
    assert metric.results[-1]['nme']['inter_ocular'] == pytest.approx(ref['inter_ocular'][0])
    bad = dict_sample(pred, gt, box)
    del bad['gt_instances']['bboxes']
    with pytest.raises(KeyError, match='face box'):
        metric.process(None, [bad])
    bad = dict_sample(pred, gt, box)
    bad['face_box'] = [0, 0, math.nan, 10]
    with pytest.raises(ValueError, match='not finite'):
        metric.process(None, [bad])
    with pytest.raises(ValueError, match='19 in the ground truth'):
        metric.process(None, [dict_sample(pred[:18], gt, box)])
    with pytest.raises(KeyError, match='pred_instances.keypoints'):
        metric.process(None, [dict(gt_keypoints=gt)])
    with pytest.raises(ValueError, match='main_norm'):
        FaceAlignmentMetric(dataset='aflw19', norms=('inter_ocular',))  # headline diag missing
    with pytest.raises(ValueError, match='auc_fr'):
        FaceAlignmentMetric(dataset='wflw', auc_fr=[dict(norm='iod', threshold=0.1)])
    with pytest.raises(ValueError, match='dataset_name'):
        FaceAlignmentMetric().process(None, [sample])


def test_report_and_ced_png(tmp_path):
    """report.md / report.json with every subset beside FaRL's numbers; one CED PNG per set."""
    pred, gt, boxes = make_faces('aflw19', 8, seed=11, noise=0.6)
    samples = [dict_sample(pred[i], gt[i], boxes[i], 'frontal' if i < 3 else None, i)
               for i in range(8)]
    metric = FaceAlignmentMetric(dataset='aflw19', output_dir=str(tmp_path / 'dump'))
    metrics = evaluate(metric, samples)
    key_map = alignment_key_map(metrics)
    assert key_map['diag/full'] == 'nme_diag/full' and key_map['auc_box_7/frontal'] == \
        'auc_box_7/frontal'
    assert alignment_key_map({'nme_inter_ocular/largepose': 1.0})['inter_ocular/pose'] == \
        'nme_inter_ocular/largepose'
    md_path, json_path = write_alignment_report(
        metrics, 'AFLW-19', 'farl', str(tmp_path), ced_curves=metric.ced_curves,
        extra=dict(config='aflw19_farl.py', best=dict(epoch=15, nme=metrics['nme'])))
    md = open(md_path).read()
    report = json.loads(open(json_path).read())
    paper = ALIGNMENT_RESULTS['aflw19']['farl-ep16']['paper']['metrics']
    assert '## full (8 images)' in md and '## frontal (3 images)' in md
    assert '![CED full](ced_full.png)' in md and '![CED frontal](ced_frontal.png)' in md
    for subset in ('full', 'frontal'):
        png = (tmp_path / f'ced_{subset}.png').read_bytes()
        assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 5000
    entry = report['subsets']['full']['metrics']['nme_diag/full']
    assert entry['paper'] == paper['diag/full'] == 0.943
    assert entry['ours'] == pytest.approx(metrics['nme_diag/full'])
    assert report['subsets']['frontal']['metrics']['auc_box_7/frontal']['paper'] == 84.17
    assert report['subsets']['full']['metrics']['fr_box_7/full']['paper'] == 0.137
    assert report['headline'] == 'diag/full' and report['headline_key'] == 'nme_diag/full'
    assert '| best |' in md and f'{metrics["nme"]:.3f}' in md
    curves = json.loads((tmp_path / 'ced_curves.json').read_text())
    assert len(curves['box_7/full']['xaxis']) == 702
    # the metric's dump works as ced_curves too, and plot_ced accepts plain (xaxis, ced) pairs
    write_alignment_report(metrics, 'aflw19', 'mcf', str(tmp_path / 'r2'),
                           ced_curves=str(tmp_path / 'dump' / 'alignment_ced.json'))
    assert (tmp_path / 'r2' / 'ced_frontal.png').exists()
    assert 'published no numbers for `mcf`' in (tmp_path / 'r2' / 'report.md').read_text()
    path = plot_ced({'a': ([0, 0.05, 0.1], [0, 0.5, 1])}, str(tmp_path / 'x' / 'c.png'), 0.1)
    assert open(path, 'rb').read(4) == b'\x89PNG'


def test_rank_shares_merge_to_single_process_result():
    """What BaseMetric.evaluate does with 2 ranks (collect_results_cpu: interleave the ranks'
    per-sample results, drop the sampler padding), done in-process: same metrics as 1 process.
    (A real 2-process gloo run costs ~15 s here; the per-sample results make it equivalent.)"""
    from mmengine.dataset import DefaultSampler
    pred, gt, boxes = make_faces('300w', 7, seed=13)
    tags = ['common', 'challenging', 'common', 'common', 'challenging', 'common', 'common']
    samples = [dict_sample(pred[i], gt[i], boxes[i], tags[i], i) for i in range(7)]
    single = evaluate(FaceAlignmentMetric(dataset='300w', auc_fr=[dict(
        norm='inter_ocular', threshold=0.08)]), samples)
    parts = []
    for rank in range(2):
        sampler = DefaultSampler(list(range(7)), shuffle=False)
        sampler.rank, sampler.world_size = rank, 2
        sampler.num_samples = 4
        sampler.total_size = 8
        metric = FaceAlignmentMetric(dataset='300w', auc_fr=[dict(norm='inter_ocular',
                                                                  threshold=0.08)])
        indices = list(sampler)
        metric.process(None, [samples[i] for i in indices])
        parts.append(metric.results)
    assert [len(p) for p in parts] == [4, 4]  # rank 1 padded with sample 0
    merged = [result for pair in zip(*parts) for result in pair][:7]
    metric = FaceAlignmentMetric(dataset='300w', auc_fr=[dict(norm='inter_ocular',
                                                              threshold=0.08)])
    assert metric.compute_metrics(merged) == single
    assert list(single)[:2] == ['nme', 'nme_inter_ocular/full']


@pytest.mark.scope('mmpose')
def test_builds_in_mmpose_scope_through_the_evaluator():
    """``type='FaceAlignmentMetric'`` in an mmpose config; MMEngine's Evaluator turns the
    PoseDataSamples into dicts (metainfo flattened) before the metric sees them."""
    from mmengine.evaluator import Evaluator
    from mmpose.registry import METRICS as POSE_METRICS
    from mmpose.structures import PoseDataSample
    metric = POSE_METRICS.build(dict(type='FaceAlignmentMetric', dataset='300w'))
    assert isinstance(metric, FaceAlignmentMetric)
    pred, gt, boxes = make_faces('300w', 4, seed=17)
    samples = []
    for i in range(4):
        sample = PoseDataSample(metainfo=dict(img_path=f'{i}.jpg', subset='common'))
        sample.pred_instances = InstanceData(keypoints=pred[i][None].astype(np.float32))
        sample.gt_instances = InstanceData(keypoints=gt[i][None], bboxes=boxes[i][None])
        samples.append(sample)
    evaluator = Evaluator(metric)
    evaluator.process(samples[:2])
    evaluator.process(samples[2:])
    metrics = evaluator.evaluate(4)
    ref = expected_nmes('300w', pred, gt, boxes)
    assert metrics['nme'] == pytest.approx(100 * ref['inter_ocular'].mean())
    assert metrics['nme_diag/common'] == pytest.approx(100 * ref['diag'].mean())
