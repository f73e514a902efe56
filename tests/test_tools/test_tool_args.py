"""Command-line handling of tools/train.py and tools/test.py, in process (no training)."""
import importlib.util
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / 'configs' / 'quickstart' / 'lapa-synthetic_farl-tiny.py')


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'_faceanalysis_tool_{name}',
                                                  REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def train_tool():
    return _load_tool('train')


@pytest.fixture(scope='module')
def test_tool():
    return _load_tool('test')


def _merged(train_tool, *argv):
    args = train_tool.parse_args([QUICKSTART, *argv])
    return train_tool.merge_args(Config.fromfile(QUICKSTART), args)


def test_quickstart_config_is_consistent():
    cfg = Config.fromfile(QUICKSTART)
    assert cfg.default_scope == 'mmseg'
    root = cfg.synthetic_data.root
    assert cfg.synthetic_data.kind == 'lapa'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'LaPaDataset'
        assert cfg[loader].dataset.data_root == root, loader
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'test'
    assert cfg.model.type == 'FaceParsingSegmentor'
    assert cfg.model.decode_head.num_classes == 11
    assert cfg.val_evaluator.type == 'FaceParsingMetric'
    assert 'faceanalysis.evaluation' in cfg.custom_imports.imports
    # FaRL's pipeline at a small canvas: alignment from the landmarks, tanh-warp
    pipeline = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert pipeline.index('FaceAlignMatrix') < pipeline.index('TanhWarp')
    # explicit scheduler ends (stack.md P17) and validation at the end of training
    assert all('end' in scheduler for scheduler in cfg.param_scheduler)
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters == cfg.train_cfg.val_interval
    assert cfg.model.neck.norm_cfg.type == 'SyncBN'


def test_work_dir_default_and_override(train_tool):
    assert _merged(train_tool).work_dir == './work_dirs/lapa-synthetic_farl-tiny'
    assert _merged(train_tool, '--work-dir', 'x/y').work_dir == 'x/y'


def test_resume_flag(train_tool):
    cfg = _merged(train_tool)
    assert not cfg.resume and cfg.load_from is None
    cfg = _merged(train_tool, '--resume')  # bare: latest checkpoint of the work dir
    assert cfg.resume is True and cfg.load_from is None
    cfg = _merged(train_tool, '--resume', 'ckpt/iter_20.pth')
    assert cfg.resume is True and cfg.load_from == 'ckpt/iter_20.pth'


def test_no_validate(train_tool):
    cfg = _merged(train_tool, '--no-validate')
    assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None


def test_local_rank_spellings(train_tool):
    for flag in ('--local-rank', '--local_rank'):
        assert train_tool.parse_args([QUICKSTART, f'{flag}=1']).local_rank == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-accelerator message')
def test_amp_without_cuda_fails_clearly(train_tool):
    with pytest.raises(SystemExit, match='--amp needs a CUDA'):
        _merged(train_tool, '--amp')


def test_amp_sets_amp_optim_wrapper(train_tool, monkeypatch):
    monkeypatch.setattr(train_tool, 'amp_device_available', lambda: True)
    cfg = _merged(train_tool, '--amp')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_show_dir_adds_the_task_visualization_hook(test_tool):
    # face parsing (FaceParsingMetric): image | ground truth | prediction panels
    cfg = Config.fromfile(QUICKSTART)
    test_tool.enable_visualization(cfg, 'out/parsing')
    assert dict(type='ParsingVisualizationHook', out_dir='out/parsing') in cfg.custom_hooks
    # other mmseg configs: mmseg's hook and visualizer
    cfg = Config(dict(default_scope='mmseg', default_hooks={},
                      test_evaluator=dict(type='IoUMetric'),
                      visualizer=dict(type='SegLocalVisualizer', name='visualizer')))
    test_tool.enable_visualization(cfg, 'out/show')
    hook = cfg.default_hooks.visualization
    assert hook.type == 'SegVisualizationHook' and hook.draw and hook.interval == 1
    assert cfg.visualizer.save_dir == 'out/show'
    cfg = Config(dict(default_scope='mmpose', default_hooks={}))
    test_tool.enable_visualization(cfg, 'out/pose')
    assert cfg.default_hooks.visualization == dict(type='PoseVisualizationHook', draw=True,
                                                   interval=1, out_dir='out/pose')


def test_metrics_to_json_types(test_tool):
    import numpy as np
    value = test_tool.to_builtin({'mIoU': np.float32(12.5), 'n': np.int64(3),
                                  'per_class': np.array([1., 2.]), 't': torch.tensor(0.5)})
    assert value == {'mIoU': 12.5, 'n': 3, 'per_class': [1.0, 2.0], 't': 0.5}
