"""Issue 5, "done when": on a generated toy corpus (coloured shapes, "a red circle"), a tiny CLIP
trained on CPU through tools/train.py reaches held-out image-to-text R@1 well above chance, and
its exported image tower then initialises a downstream (parsing) config.

configs/pretrain/farl-tiny_toy-shapes_flip-mask50_cpu.py: 1,024 training pairs in 16 WebDataset
shards, FLIP's 50% token masking with an unmasked phase for the last 50 of 300 iterations,
retrieval on 120 held-out pairs whose 30 captions give chance i2t R@1 = 3.3 %. About a minute
on 2 cores; marked slow.
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.test_tools.test_parsing_overfit import _run

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'pretrain' / 'farl-tiny_toy-shapes_flip-mask50_cpu.py'
DOWNSTREAM = REPO / 'configs' / 'quickstart' / 'lapa-synthetic_farl-tiny_toy-pretrained.py'
TOOLS = REPO / 'tools'

pytestmark = pytest.mark.slow


def _export_backbone(*args) -> None:
    """tools/export_backbone.py in this process (its CLI runs as a subprocess in test_export.py;
    here the interpreter start-up would only add time)."""
    spec = importlib.util.spec_from_file_location('export_backbone', TOOLS / 'export_backbone.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(arg) for arg in args]) == 0


def _val_records(work_dir: Path):
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert scalars, f'no scalars.json under {work_dir}'
    lines = [json.loads(line) for line in scalars[-1].read_text().splitlines()]
    return [line for line in lines if 'retrieval/i2t_R@1' in line]


def test_toy_pretraining_retrieval_and_export_to_downstream(tmp_path):
    work_dir = tmp_path / 'work'
    train = _run([sys.executable, TOOLS / 'train.py', CONFIG, '--work-dir', work_dir], tmp_path)
    records = _val_records(work_dir)
    assert [r['step'] for r in records] == [100, 200, 300]
    best = max(r['retrieval/i2t_R@1'] for r in records)
    final = records[-1]
    print(f'train {train.seconds:.0f} s; held-out retrieval per 100 iterations: '
          + '; '.join(f"i2t R@1 {r['retrieval/i2t_R@1']:.1f} t2i R@1 {r['retrieval/t2i_R@1']:.1f}"
                      for r in records))
    chance = final['retrieval/chance_i2t_R@1']
    assert chance == pytest.approx(100 / 30)
    assert best >= 4 * chance  # well above chance: colour is learned first, then shape
    assert final['retrieval/i2t_R@5'] >= 50
    best_ckpt = list(work_dir.glob('best_retrieval_i2t_R@1_iter_*.pth'))
    assert len(best_ckpt) == 1

    exported = tmp_path / 'toy_clip.pth'
    _export_backbone(work_dir / 'iter_300.pth', exported, '--format', 'openai')

    # The exported file initialises the parsing quickstart's backbone through init_cfg.
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import faceanalysis.models  # noqa: F401
    from faceanalysis.registry import MODELS
    cfg = Config.fromfile(str(DOWNSTREAM))
    assert cfg.model.backbone.init_cfg.checkpoint == 'checkpoints/toy_clip.pth'
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': str(exported)})
    init_default_scope('mmseg')
    segmentor = MODELS.build(cfg.model)
    segmentor.init_weights()
    trained = torch.load(work_dir / 'iter_300.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    backbone = segmentor.backbone.state_dict()
    for name, value in backbone.items():
        assert torch.equal(value, trained[f'clip.visual.{name}']), name
