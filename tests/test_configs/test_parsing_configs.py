"""Every configs/parsing/*.py: FaRL's recipe, its checkpoint, its full-size model (issue 3).

Models are built on the ``meta`` device (no memory, no init; the backbone's ``init_cfg`` set to
None) and run on a meta ``(1, 3, 512, 512)`` canvas, so the shape checks of all 13 configs take a
few seconds. The dataset bases run their real pipelines on generated data in each release
format, and ``tools/train.py`` stops before any work when the checkpoint is missing.
"""
import importlib.util
import os
import os.path as osp
import re
from glob import glob

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs', 'parsing')
DATASETS = {
    'lapa': dict(classes=11, dataset='LaPaDataset', swap=[(2, 3), (4, 5)], wf=0.8,
                 benchmark='lapa'),
    'celebm': dict(classes=19, dataset='CelebAMaskHQDataset', swap=[(4, 5), (6, 7), (8, 9)],
                   wf=0.0, benchmark='celebamaskhq'),
}
RECIPES = ('farl', 'farl-ep64', 'mcf', 'flip80m-b16', 'flip80m-b32', 'flip80m-l14')
CHECKPOINTS = {
    'farl': 'checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth',
    'farl-ep64': 'checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth',
    'mcf': 'checkpoints/mcf_vit-b16.pth',
    'flip80m-b16': 'checkpoints/FLIP-base-16',
    'flip80m-b32': 'checkpoints/FLIP-base-32',
    'flip80m-l14': 'checkpoints/FLIP-large-14',
}
BACKBONES = {'farl': 'FaRL', 'farl-ep64': 'FaRL', 'mcf': 'MCF', 'flip80m-b16': 'FLIP80M',
             'flip80m-b32': 'FLIP80M', 'flip80m-l14': 'FLIP80M'}
# feature side at 448 (patch 32 -> 14 tokens, patch 14 -> 32) and width
SIDE = {'flip80m-b32': 14, 'flip80m-l14': 32}
WIDTH = {'flip80m-l14': 1024}
CLIP_MEAN = [122.7709383, 116.7460125, 104.0937362]
IMAGENET_MEAN = [123.675, 116.28, 103.53]
CONFIGS = [f'{ds}_{recipe}' for ds in DATASETS for recipe in RECIPES]
VARIANTS = ['lapa_farl_freeze-backbone']


def _cfg(name):
    return Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))


def _split(name):
    ds, recipe = name.split('_', 1)
    return ds, recipe.replace('_freeze-backbone', '')


def test_config_set_is_complete():
    found = sorted(osp.splitext(osp.basename(p))[0] for p in glob(osp.join(CONFIG_DIR, '*.py')))
    assert found == sorted(CONFIGS + VARIANTS)


@pytest.mark.parametrize('name', CONFIGS + VARIANTS)
def test_checkpoint_and_recipe(name):
    from faceanalysis.datasets.transforms import PARSING_META_KEYS
    from faceanalysis.models.pretrained import find_pretrained_checkpoints

    ds, recipe = _split(name)
    info = DATASETS[ds]
    cfg = _cfg(name)
    assert cfg.default_scope == 'mmseg'
    assert 'faceanalysis.evaluation' in cfg.custom_imports.imports
    # the checkpoint it expects, and nothing else
    assert find_pretrained_checkpoints(cfg) == [('model.backbone.init_cfg.checkpoint',
                                                 CHECKPOINTS[recipe])]
    assert re.fullmatch(r'checkpoints/[\w.\-]+', CHECKPOINTS[recipe])
    assert cfg.paper_reference == dict(dataset=info['benchmark'],
                                       recipe='farl-ep16' if recipe == 'farl' else recipe)

    # network (farl_protocol.md §2.1)
    model = cfg.model
    assert model.type == 'FaceParsingSegmentor'
    assert model.backbone.type == BACKBONES[recipe] and model.backbone.img_size == 448
    assert model.backbone_input_size == (448, 448)
    assert model.data_preprocessor.size == (512, 512)
    assert model.data_preprocessor.mean == (IMAGENET_MEAN if recipe == 'mcf' else CLIP_MEAN)
    assert model.neck.type == 'Feature2Pyramid' and model.neck.rescales == [4, 2, 1, 0.5]
    assert model.neck.norm_cfg.type == 'SyncBN' and model.decode_head.norm_cfg.type == 'SyncBN'
    head = model.decode_head
    assert (head.type, head.channels, head.num_classes) == ('UPerHead', 768, info['classes'])
    assert head.dropout_ratio == 0.1 and head.pool_scales == (1, 2, 3, 6)
    assert head.init_cfg is None and not head.align_corners
    assert head.loss_decode.type == 'CrossEntropyLoss' and not head.loss_decode.avg_non_ignore
    assert [tuple(p) for p in model.swap_pairs] == info['swap']
    assert model.flip_test is False
    assert model.freeze_backbone is name.endswith('freeze-backbone')

    # recipe (farl_protocol.md §5.1)
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 1e-3
    assert opt.optimizer.weight_decay == 1e-5 and opt.optimizer.betas == (0.9, 0.999)
    assert opt.paramwise_cfg.custom_keys == {'backbone': dict(lr_mult=0.1)}
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_cfg.max_epochs == 300 and cfg.train_cfg.val_interval == 1
    (sched, ) = cfg.param_scheduler
    assert (sched.type, sched.milestones, sched.gamma) == ('MultiStepLR', [200], 0.1)
    assert sched.by_epoch and sched.begin == 0 and sched.end == 300
    assert cfg.train_dataloader.batch_size == 5 and cfg.auto_scale_lr.base_batch_size == 40
    (ema, ) = cfg.custom_hooks
    assert (ema.type, ema.momentum, ema.update_buffers) == ('EMAHook', 0.001, True)
    ckpt = cfg.default_hooks.checkpoint
    assert (ckpt.save_best, ckpt.rule, ckpt.save_last) == ('mean_f1', 'greater', True)

    # data: evaluation on the TEST split every epoch, FaRL's pipelines
    train, val, test = (cfg[k].dataset for k in ('train_dataloader', 'val_dataloader',
                                                 'test_dataloader'))
    assert train.type == val.type == test.type == info['dataset']
    assert train.split == 'train' and val.split == 'test' and test.split == 'test'
    assert train.train_data_ratio == 1.0
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'FaceParsingMetric'
    for pipeline in (train.pipeline, test.pipeline):
        assert tuple(pipeline[-1].meta_keys) == PARSING_META_KEYS
        warp = next(t for t in pipeline if t.type == 'TanhWarp')
        assert warp.warp_factor == info['wf'] and warp.warped_shape == (512, 512)
        align = next(t for t in pipeline if t.type == 'FaceAlignMatrix')
        assert align.mode == ('landmarks' if ds == 'lapa' else 'identity')
    types = [t.type for t in train.pipeline]
    assert types[types.index('FaceAlignMatrix'):] == [
        'FaceAlignMatrix', 'RandomFaceAffine', 'TanhWarp', 'RandomGray', 'RandomGamma',
        'RandomBoxBlur', 'PackSegInputs']
    assert 'RandomFlip' not in types  # FaRL trains without flips
    assert 'RandomFaceAffine' not in [t.type for t in test.pipeline]
    assert next(t for t in test.pipeline if t.type == 'TanhWarp').warp_label is False


@pytest.mark.scope('mmseg')
@pytest.mark.parametrize('name', CONFIGS + VARIANTS)
def test_builds_full_size_model(name):
    import faceanalysis.models  # noqa: F401
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    ds, recipe = _split(name)
    cfg = _cfg(name)
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
        canvas = torch.empty(1, 3, 512, 512)
        feats = model.extract_feat(canvas)
        logits = model.encode_decode(canvas, [dict(img_shape=(512, 512), pad_shape=(512, 512),
                                                   ori_shape=(512, 512))])
    side, width = SIDE.get(recipe, 28), WIDTH.get(recipe, 768)
    assert [tuple(f.shape) for f in feats] == [(1, width, side * 4, side * 4),
                                                (1, width, side * 2, side * 2),
                                                (1, width, side, side),
                                                (1, width, side // 2, side // 2)]
    assert tuple(logits.shape) == (1, DATASETS[ds]['classes'], 512, 512)
    n_params = sum(p.numel() for p in model.backbone.parameters())
    assert n_params > (300e6 if recipe == 'flip80m-l14' else 85e6)
    trainable = sum(p.numel() for p in model.backbone.parameters() if p.requires_grad)
    assert trainable == (0 if name in VARIANTS else n_params)


@pytest.fixture(scope='module')
def synthetic_roots(tmp_path_factory):
    from faceanalysis.datasets import make_synthetic_celebamaskhq, make_synthetic_lapa
    root = tmp_path_factory.mktemp('parsing_data')
    lapa = make_synthetic_lapa(str(root / 'LaPa'), dict(train=1, val=0, test=1), image_size=160)
    celebm = make_synthetic_celebamaskhq(str(root / 'CelebAMask-HQ'),
                                         dict(train=1, val=0, test=1), image_size=1024)
    return dict(lapa=lapa, celebm=celebm)


@pytest.mark.scope('mmseg')
@pytest.mark.parametrize('ds', list(DATASETS))
def test_dataset_base_pipelines_run(ds, synthetic_roots):
    """The train / test pipelines of configs/_base_/datasets on data in the release format."""
    import faceanalysis.datasets  # noqa: F401
    from mmseg.registry import DATASETS as REGISTRY

    cfg = _cfg(f'{ds}_farl')
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset_cfg = cfg[loader].dataset
        dataset_cfg.data_root = synthetic_roots[ds]
        dataset = REGISTRY.build(dataset_cfg)
        assert dataset.metainfo['swap_pairs'] and \
            [tuple(p) for p in dataset.metainfo['swap_pairs']] == DATASETS[ds]['swap']
        packed = dataset[0]
        sample = packed['data_samples']
        assert tuple(packed['inputs'].shape) == (3, 512, 512)
        assert sample.img_shape == (512, 512) and sample.warp_factor == DATASETS[ds]['wf']
        assert sample.align_matrix.shape == (3, 3)
        if loader == 'train_dataloader':
            assert tuple(sample.gt_sem_seg.shape) == (512, 512)  # warped label
        else:  # original-resolution label, in the frame the prediction is mapped back to
            assert tuple(sample.gt_sem_seg.shape) == tuple(sample.align_src_shape)
        assert int(sample.gt_sem_seg.data.max()) < DATASETS[ds]['classes']


def _train_tool():
    spec = importlib.util.spec_from_file_location('_faceanalysis_tool_train_parsing',
                                                  osp.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_checkpoint_stops_train_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    tool = _train_tool()
    with pytest.raises(SystemExit) as info:
        tool.main([osp.join(CONFIG_DIR, 'lapa_farl.py'), '--work-dir', str(tmp_path / 'w')])
    message = str(info.value)
    assert 'checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth' in message
    assert 'model.backbone.init_cfg.checkpoint' in message and 'Download' in message
    assert not os.listdir(tmp_path)  # no work dir, no data, no log: nothing started


def test_check_passes_once_the_checkpoint_exists(tmp_path, monkeypatch):
    from faceanalysis.models.pretrained import (check_pretrained_checkpoints,
                                                missing_pretrained_checkpoints)
    monkeypatch.chdir(tmp_path)
    cfg = _cfg('lapa_flip80m-l14')
    assert missing_pretrained_checkpoints(cfg) == [('model.backbone.init_cfg.checkpoint',
                                                    'checkpoints/FLIP-large-14')]
    os.makedirs('checkpoints/FLIP-large-14')
    check_pretrained_checkpoints(cfg)  # exists: no error (its contents are checked at load)
    cfg.model.backbone.init_cfg = None  # training from scratch needs no file
    cfg2 = _cfg('celebm_mcf')
    cfg2.model.backbone.init_cfg = None
    check_pretrained_checkpoints(cfg2)
