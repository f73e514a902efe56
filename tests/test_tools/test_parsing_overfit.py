"""Issue 3, "done when": a tiny-backbone config trained on ~20 generated LaPa-format images
reaches foreground F1 >= 0.9 on them through tools/train.py then tools/test.py, on CPU.

tests/data/configs/lapa-synthetic_farl-tiny_overfit.py: the quickstart stack (LaPaDataset, FaRL's
5-point alignment + tanh-warp pipeline, FaceParsingSegmentor, FaceParsingMetric) with 20 images,
300 iterations, evaluated on the training images. About 2 minutes on 2 cores; marked slow.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'lapa-synthetic_farl-tiny_overfit.py'
TOOLS = REPO / 'tools'
_LAUNCHER_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                 'MASTER_PORT', 'GROUP_RANK', 'TORCHELASTIC_RUN_ID')

pytestmark = pytest.mark.slow


def _run(cmd, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV}
    env['PYTHONPATH'] = os.pathsep.join([str(REPO)] + [p for p in [env.get('PYTHONPATH')] if p])
    start = time.time()
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env, timeout=timeout,
                          capture_output=True, text=True)
    proc.seconds = time.time() - start
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))} exited with {proc.returncode}\n--- stdout\n'
                    f'{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}', pytrace=False)
    return proc


def test_tiny_model_fits_20_generated_lapa_images(tmp_path):
    work_dir = tmp_path / 'work'
    train = _run([sys.executable, TOOLS / 'train.py', CONFIG, '--work-dir', work_dir], tmp_path)
    images = list((tmp_path / 'data' / 'synthetic' / 'LaPa-overfit' / 'train' / 'images').iterdir())
    assert len(images) == 20
    checkpoint = work_dir / 'iter_300.pth'
    assert checkpoint.is_file()

    out = tmp_path / 'metrics.json'
    show = tmp_path / 'show'
    test = _run([sys.executable, TOOLS / 'test.py', CONFIG, checkpoint, '--work-dir', work_dir,
                 '--out', out, '--show-dir', show], tmp_path)
    metrics = json.loads(out.read_text())
    print(f'train {train.seconds:.0f} s, test {test.seconds:.0f} s, mean_f1 '
          f'{metrics["mean_f1"]:.2f}, per class '
          + ', '.join(f'{k[3:]} {v:.1f}' for k, v in metrics.items() if k.startswith('f1/')))
    # foreground mean F1 (10 classes, %), from one confusion matrix in original-image space
    assert metrics['mean_f1'] >= 90.0
    assert all(metrics[f'f1/{name}'] > 80.0 for name in (
        'skin', 'left_eyebrow', 'right_eyebrow', 'left_eye', 'right_eye', 'nose', 'upper_lip',
        'inner_mouth', 'lower_lip', 'hair'))

    report = json.loads((work_dir / 'report.json').read_text())
    assert report['metrics']['mean_f1'] == pytest.approx(metrics['mean_f1'])
    assert report['extra']['last']['iter'] == 300  # the last checkpoint, named in the report
    markdown = (work_dir / 'report.md').read_text()
    assert 'mean_f1' in markdown and 'left_eye' in markdown
    assert len([p for p in show.iterdir() if p.suffix == '.png']) == 20
