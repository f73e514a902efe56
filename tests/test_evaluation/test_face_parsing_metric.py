"""FaceParsingMetric against hand-computed confusion matrices (farl_protocol.md §7.1).

Toy case, classes (background, skin, eye, mouth), two images of different sizes::

    image A (2x4)  gt   0 0 0 1     pred  0 0 1 1
                        1 1 2 2           0 1 1 1
    image B (2x5)  gt   0 0 1 1 1   pred  0 0 1 1 1
                        1 3 3 3 3         1 3 3 3 1

Summed by hand, hist[gt, pred] (rows ground truth)::

                  bg  skin eye mouth | GT total
        bg         4    1   0   0    |   5
        skin       1    6   0   0    |   7
        eye        0    2   0   0    |   2      <- present, never predicted
        mouth      0    1   0   3    |   4
        pred total 5   10   0   3    |  18

    F1  bg 2*4/(5+5) = 8/10, skin 2*6/(7+10) = 12/17, eye 0/(2+0) = 0, mouth 2*3/(4+3) = 6/7
    mean_f1 (foreground: skin, eye, mouth) = (12/17 + 0 + 6/7) / 3        (eye counts, as 0)
    IoU bg 4/6, skin 6/11, eye 0, mouth 3/4;  mIoU over all 4 classes;  aAcc 13/18
"""
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from faceanalysis.evaluation import FaceParsingMetric, confusion_matrix_metrics
from faceanalysis.registry import METRICS

CLASSES = ('background', 'skin', 'eye', 'mouth')

GT_A = [[0, 0, 0, 1], [1, 1, 2, 2]]
PRED_A = [[0, 0, 1, 1], [0, 1, 1, 1]]
GT_B = [[0, 0, 1, 1, 1], [1, 3, 3, 3, 3]]
PRED_B = [[0, 0, 1, 1, 1], [1, 3, 3, 3, 1]]

HIST = np.array([[4, 1, 0, 0],
                 [1, 6, 0, 0],
                 [0, 2, 0, 0],
                 [0, 1, 0, 3]])
F1 = {'background': 8 / 10, 'skin': 12 / 17, 'eye': 0.0, 'mouth': 6 / 7}
IOU = {'background': 4 / 6, 'skin': 6 / 11, 'eye': 0.0, 'mouth': 3 / 4}
MEAN_F1 = (12 / 17 + 0 + 6 / 7) / 3
MIOU = (4 / 6 + 6 / 11 + 0 + 3 / 4) / 4
AACC = 13 / 18


def sample(gt, pred, img_path='img.jpg'):
    data = SegDataSample(metainfo=dict(img_path=img_path))
    data.gt_sem_seg = PixelData(data=torch.as_tensor(gt, dtype=torch.int64)[None])
    data.pred_sem_seg = PixelData(data=torch.as_tensor(pred, dtype=torch.int64)[None])
    return data


def run(samples, classes=CLASSES, **kwargs):
    """Score ``samples`` the way the Runner does (Evaluator.process turns them into dicts)."""
    metric = FaceParsingMetric(**kwargs)
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dict(classes=classes)
    evaluator.process(data_samples=samples)
    return evaluator.evaluate(len(samples)), metric


def toy_samples():
    return [sample(GT_A, PRED_A, 'a.jpg'), sample(GT_B, PRED_B, 'b.jpg')]


def test_hand_computed_toy_case():
    metrics, metric = run(toy_samples())
    np.testing.assert_array_equal(metric.last_confusion_matrix, HIST)
    assert metric.last_confusion_matrix.dtype == np.int64
    for name in CLASSES:
        assert metrics[f'f1/{name}'] == pytest.approx(100 * F1[name])
        assert metrics[f'iou/{name}'] == pytest.approx(100 * IOU[name])
    # the class present but never predicted has F1 0 and counts in the mean; background does not
    assert metrics['f1/eye'] == 0.0
    assert metrics['mean_f1'] == pytest.approx(100 * MEAN_F1)
    assert metrics['mean_f1'] != pytest.approx(100 * (12 / 17 + 6 / 7) / 2)  # eye dropped
    assert metrics['mean_f1'] != pytest.approx(100 * (0.8 + 12 / 17 + 6 / 7) / 4)  # bg included
    assert metrics['mIoU'] == pytest.approx(100 * MIOU)
    assert metrics['aAcc'] == pytest.approx(100 * AACC)
    # no prefix: configs write save_best='mean_f1'
    assert list(metrics)[:3] == ['mean_f1', 'mIoU', 'aAcc']
    assert all(isinstance(v, float) for v in metrics.values())


def test_samples_as_dicts_tensors_and_bare_maps():
    """process() takes the Evaluator's dicts and SegDataSamples; maps may be (H, W)."""
    metric = FaceParsingMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, [sample(GT_A, PRED_A)])  # a SegDataSample, not a dict
    metric.process(None, [dict(img_path='b.jpg', gt_sem_seg=dict(data=torch.tensor(GT_B)),
                               pred_sem_seg=dict(data=np.array(PRED_B)))])
    assert metric.evaluate(2)['mean_f1'] == pytest.approx(100 * MEAN_F1)


@pytest.mark.parametrize('background_index, expected', [
    (None, (0.8 + 12 / 17 + 0 + 6 / 7) / 4),
    (3, (0.8 + 12 / 17 + 0) / 3),
    (-1, (0.8 + 12 / 17 + 0) / 3),
])
def test_background_index(background_index, expected):
    metrics, _ = run(toy_samples(), background_index=background_index)
    assert metrics['mean_f1'] == pytest.approx(100 * expected)


def test_absent_class():
    """A class with neither ground truth nor prediction: F1 = 0/0."""
    classes = CLASSES + ('hair',)
    metrics, _ = run(toy_samples(), classes)  # default 'exclude'
    assert math.isnan(metrics['f1/hair']) and math.isnan(metrics['iou/hair'])
    assert metrics['mean_f1'] == pytest.approx(100 * MEAN_F1)
    assert metrics['mIoU'] == pytest.approx(100 * MIOU)
    metrics, _ = run(toy_samples(), classes, absent_classes='nan')  # FaRL's arithmetic
    assert math.isnan(metrics['mean_f1']) and math.isnan(metrics['mIoU'])
    metrics, _ = run(toy_samples(), classes, absent_classes='zero')
    assert metrics['f1/hair'] == 0.0
    assert metrics['mean_f1'] == pytest.approx(100 * (12 / 17 + 0 + 6 / 7 + 0) / 4)
    with pytest.raises(ValueError, match='absent_classes'):
        FaceParsingMetric(absent_classes='drop')


def test_merged_groups():
    groups = dict(parts=['eye', 'mouth'], head=['background', 'skin'], mouth=['mouth'])
    metrics, _ = run(toy_samples(), groups=groups)
    # by hand, each group merged into one class of HIST:
    #   parts: TP = hist[2:4, 2:4].sum() = 3, GT = 2 + 4 = 6, pred = 0 + 3 = 3
    #   head:  TP = 4 + 1 + 1 + 6 = 12, GT = 5 + 7 = 12, pred = 5 + 10 = 15
    assert metrics['f1_group/parts'] == pytest.approx(100 * 6 / 9)
    assert metrics['iou_group/parts'] == pytest.approx(100 * 3 / 6)
    assert metrics['f1_group/head'] == pytest.approx(100 * 24 / 27)
    assert metrics['iou_group/head'] == pytest.approx(100 * 12 / 15)
    assert metrics['f1_group/mouth'] == pytest.approx(metrics['f1/mouth'])
    assert metrics['mean_f1'] == pytest.approx(100 * MEAN_F1)  # groups are not in the mean
    # the same from the merged 2x2 matrix (rows/columns: head, parts)
    merged = confusion_matrix_metrics(np.array([[12, 0], [3, 3]]), ['head', 'parts'], None)
    assert merged['f1/parts'] == pytest.approx(metrics['f1_group/parts'])
    assert merged['f1/head'] == pytest.approx(metrics['f1_group/head'])

    with pytest.raises(ValueError, match=r"unknown classes \['nose'\]"):
        run(toy_samples(), groups=dict(parts=['eye', 'nose']))
    with pytest.raises(ValueError, match='at least one class'):
        FaceParsingMetric(groups=dict(parts='eye'))


def test_ignore_index():
    """GT 255 pixels are excluded whatever is predicted there; a 255 *prediction* is a miss."""
    ignored = sample([[255, 255, 255]], [[0, 3, 255]], 'c.jpg')
    metrics, metric = run(toy_samples() + [ignored])
    np.testing.assert_array_equal(metric.last_confusion_matrix, HIST)
    assert metrics['mean_f1'] == pytest.approx(100 * MEAN_F1)

    unpredicted = sample([[1]], [[255]], 'd.jpg')
    metrics, metric = run(toy_samples() + [unpredicted])
    np.testing.assert_array_equal(metric.last_confusion_matrix, HIST)
    np.testing.assert_array_equal(metric.last_unpredicted, [0, 1, 0, 0])
    assert metrics['f1/skin'] == pytest.approx(100 * 12 / 18)  # GT 8, pred 10
    assert metrics['aAcc'] == pytest.approx(100 * 13 / 19)

    metrics, _ = run([sample([[0, 1, 7]], [[0, 1, 2]])], ignore_index=7)
    assert metrics['aAcc'] == 100.0  # eye predicted at an ignored pixel: not counted, so eye
    assert math.isnan(metrics['f1/eye'])  # has neither ground truth nor prediction
    with pytest.raises(ValueError, match='ignore_index 2 is a class id'):
        run(toy_samples(), ignore_index=2)


@pytest.mark.parametrize('gt, pred, what, value', [
    ([[0, 9]], [[0, 1]], 'ground-truth', '9'),
    ([[0, 1]], [[0, -1]], 'predicted', '-1'),
    ([[0, 1]], [[4, 1]], 'predicted', '4'),
])
def test_bad_label_value_names_the_file(gt, pred, what, value):
    with pytest.raises(ValueError, match=rf'faces/0042\.jpg: {what} label value\(s\) '
                                         rf'\[{value}\] out of range'):
        run([sample(gt, pred, 'faces/0042.jpg')])


def test_shape_mismatch_and_float_labels_name_the_file():
    with pytest.raises(ValueError, match=r'x\.jpg: prediction of shape \(2, 4\) but ground truth '
                                         r'of shape \(2, 5\)'):
        run([sample(GT_B, PRED_A, 'x.jpg')])
    bad = sample(GT_A, PRED_A, 'y.jpg')
    bad.pred_sem_seg = PixelData(data=torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r'y\.jpg: pred_sem_seg must hold integer label ids'):
        run([bad])


def test_needs_classes():
    metric = FaceParsingMetric()
    with pytest.raises(ValueError, match=r'dataset_meta\["classes"\]'):
        metric.process(None, toy_samples())


def test_output_dir_and_registry(tmp_path):
    metric = METRICS.build(dict(type='FaceParsingMetric', output_dir=str(tmp_path)))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, toy_samples())
    metric.evaluate(2)
    np.testing.assert_array_equal(np.load(tmp_path / 'confusion_matrix.npy'), HIST)
    assert not (tmp_path / 'unpredicted_pixels.npy').exists()
    assert metric.results == []  # evaluate() resets for the next epoch


def test_large_counts_are_exact():
    """int64 sums: counts beyond float32 precision (2**24) stay exact."""
    hist = np.array([[2**40 + 1, 3], [5, 2**40 + 7]], dtype=np.int64)
    metric = FaceParsingMetric()
    metric.dataset_meta = dict(classes=('background', 'skin'))
    metrics = metric.compute_metrics([hist_with_misses(hist)] * 3)
    np.testing.assert_array_equal(metric.last_confusion_matrix, 3 * hist)
    tp, both = 3 * (2**40 + 7), 3 * (2**40 + 7 + 3 + 2**40 + 7 + 5)
    assert metrics['f1/skin'] == pytest.approx(100 * 2 * tp / both, rel=1e-15)


def hist_with_misses(hist):
    return np.concatenate([hist, np.zeros((len(hist), 1), np.int64)], axis=1)


DIST_SCRIPT = r'''
import json, os, socket
import numpy as np
import torch
import torch.multiprocessing as mp

import faceanalysis  # noqa: F401
from faceanalysis.registry import METRICS  # faceanalysis.evaluation not imported: lazy location

CLASSES = ('background', 'skin', 'left_eye', 'right_eye', 'mouth')
GROUPS = dict(eyes=['left_eye', 'right_eye'])
N = 7  # odd: the sampler pads rank 1 with a copy of sample 0, which evaluate(N) must drop


def samples():
    rng = np.random.RandomState(0)
    out = []
    for i in range(N):
        h, w = 5 + i, 9 - i % 3
        gt = rng.randint(0, len(CLASSES), (h, w))
        gt[rng.rand(h, w) < 0.1] = 255
        pred = np.where(rng.rand(h, w) < 0.6, gt, rng.randint(0, len(CLASSES), (h, w)))
        pred[pred == 255] = 0
        out.append(dict(img_path=f'{i}.jpg', gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
                        pred_sem_seg=dict(data=torch.from_numpy(pred)[None])))
    return out


def evaluate(collect_device):
    from mmengine.dataset import DefaultSampler
    metric = METRICS.build(dict(type='FaceParsingMetric', groups=GROUPS,
                                collect_device=collect_device))
    metric.dataset_meta = dict(classes=CLASSES)
    data = samples()
    indices = list(DefaultSampler(list(range(N)), shuffle=False))  # this rank's share, padded
    for start in range(0, len(indices), 2):
        metric.process(None, [data[i] for i in indices[start:start + 2]])
    metrics = metric.evaluate(N)
    hist = metric.last_confusion_matrix
    return dict(indices=indices, metrics=metrics,
                hist=None if hist is None else hist.tolist())


def worker(rank, world, port):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    out = {device: evaluate(device) for device in ('cpu', 'gpu')}
    with open(f'rank{rank}.json', 'w') as f:
        json.dump(out, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(2, port), nprocs=2, start_method='fork')
    with open('single.json', 'w') as f:
        json.dump({'cpu': evaluate('cpu')}, f)
'''


def test_distributed_equals_single_process(run_python, tmp_path):
    """2 gloo ranks, each scoring its DefaultSampler share, then BaseMetric.evaluate (as the
    Runner's test loop): the metrics equal the 1-process ones exactly, on both ranks."""
    import json
    run_python(DIST_SCRIPT, timeout=120)
    single = json.loads((tmp_path / 'single.json').read_text())['cpu']
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert ranks[0]['cpu']['indices'] == [0, 2, 4, 6]
    assert ranks[1]['cpu']['indices'] == [1, 3, 5, 0]  # padded with sample 0
    assert single['metrics']['mean_f1'] > 0 and 'f1_group/eyes' in single['metrics']
    for device in ('cpu', 'gpu'):  # 'gpu' = collect_results_gpu's all_gather path (gloo here)
        assert ranks[0][device]['hist'] == single['hist']
        assert ranks[1][device]['hist'] is None  # computed on the main process only
        for rank in ranks:
            assert rank[device]['metrics'] == single['metrics']  # exact, broadcast to all ranks
