"""faceanalysis.apis.reporting.write_alignment_outputs after a real ``runner.test()``.

A randomly initialised tiny model (tests/data/configs/alignment_300w-synthetic_tiny.py) is
tested on 4 generated 300W-format faces; the function must write report.md / report.json with
the metric's numbers and the paper's, one CED PNG per subset, and with ``show_dir`` one OpenCV
drawing per test image.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'alignment_300w-synthetic_tiny.py'


@pytest.fixture
def tested_runner(tmp_path, monkeypatch):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from faceanalysis.datasets.synthetic import prepare_synthetic_data

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    cfg = Config.fromfile(str(CONFIG))
    cfg.synthetic_data.num_images = dict(train=4, common=1, challenging=1)
    cfg.synthetic_data.root = cfg.test_dataloader.dataset.data_root = 'data/300W-4'
    prepare_synthetic_data(cfg.synthetic_data)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.test_dataloader.batch_size = 2
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    return runner, metrics, cfg


def test_report_and_drawings(tested_runner, tmp_path):
    from faceanalysis.apis.reporting import (alignment_report_target, find_alignment_metric,
                                             write_alignment_outputs)

    runner, metrics, cfg = tested_runner
    metric = find_alignment_metric(runner)
    assert metric is not None and metric.ced_curves
    assert alignment_report_target(cfg, metric) == dict(dataset='300w', recipe='tiny-synthetic')

    out = write_alignment_outputs(runner, metrics, cfg, str(tmp_path / 'report'),
                                  show_dir=str(tmp_path / 'show'))
    md = Path(out['report_md']).read_text()
    payload = json.loads(Path(out['report_json']).read_text())
    assert '300W' in md and 'nme' in md
    assert 'paper" columns are empty' in md
    assert json.dumps(payload)  # serialisable, NaN as null
    assert f'{metrics["nme"]:.3f}' in md
    assert sorted(p.name for p in (tmp_path / 'report').glob('ced_*.png'))  # one per subset

    assert out['drawn'] == 4
    drawings = sorted((tmp_path / 'show').glob('*.png'))
    assert len(drawings) == 4
    image = cv2.imread(str(drawings[0]))
    assert image is not None and image.shape[2] == 3


def test_draw_alignment_colours():
    from faceanalysis.apis.reporting import GT_COLOR, PRED_COLOR, draw_alignment
    image = np.zeros((64, 64, 3), np.uint8)
    drawn = draw_alignment(image, pred=np.array([[10, 10]]), gt=np.array([[40, 50]]),
                           box=np.array([5, 5, 60, 60]), radius=2)
    assert tuple(drawn[10, 10]) == PRED_COLOR and tuple(drawn[50, 40]) == GT_COLOR
    assert image.sum() == 0  # the input is left alone


def test_report_target_needs_a_dataset():
    from mmengine.config import Config

    from faceanalysis.apis.reporting import alignment_report_target
    with pytest.raises(ValueError, match='alignment dataset'):
        alignment_report_target(Config(dict(test_evaluator=dict(type='FaceAlignmentMetric'))))
    assert alignment_report_target(Config(dict(
        test_evaluator=dict(type='FaceAlignmentMetric', dataset='wflw')))) == \
        dict(dataset='wflw', recipe='farl-ep16')
