"""Every configs/alignment/*.py builds its full-size model and names its checkpoint (issue 4).

Models are built on the ``meta`` device (no memory, no init; ``init_cfg`` of the backbone set to
None) and run on a meta ``(1, 3, 512, 512)`` canvas, so the shape checks of all 18 configs take a
few seconds.
"""
import os.path as osp
import re
from glob import glob

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs', 'alignment')
DATASETS = {
    '300w': dict(K=68, nme=(36, 45), epochs=250, dataset='IBUG300WDataset', split='full',
                 face_scale=0.8),
    'wflw': dict(K=98, nme=(60, 72), epochs=150, dataset='WFLWCSVDataset', split='test',
                 face_scale=0.8),
    'aflw19': dict(K=19, nme=(6, 11), epochs=150, dataset='AFLW19Dataset', split='test',
                   face_scale=1.0),
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
# heatmap side and channel width per backbone (448 input; patch 32 gives 56, patch 14 gives 128)
HEATMAP = {'flip80m-b32': 56, 'flip80m-l14': 128}
WIDTH = {'flip80m-l14': 1024}
CONFIGS = [f'{ds}_{recipe}' for ds in DATASETS for recipe in RECIPES]


def _cfg(name):
    return Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))


def test_config_set_is_complete():
    found = sorted(osp.splitext(osp.basename(p))[0] for p in glob(osp.join(CONFIG_DIR, '*.py')))
    assert found == sorted(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_checkpoint_and_recipe(name):
    ds, recipe = name.split('_', 1)
    cfg = _cfg(name)
    info = DATASETS[ds]
    ckpt = cfg.model.backbone.init_cfg
    assert ckpt.type == 'Pretrained'
    assert ckpt.checkpoint == CHECKPOINTS[recipe]
    assert re.fullmatch(r'checkpoints/[\w.\-]+', ckpt.checkpoint)
    if recipe.startswith('farl') or recipe == 'mcf':
        assert ckpt.checkpoint.endswith('.pth')  # a file as released
    else:
        assert not osp.splitext(ckpt.checkpoint)[1]  # a Hugging Face model directory
    assert cfg.paper_reference == dict(dataset=ds, recipe='farl-ep16' if recipe == 'farl'
                                       else recipe)

    # FaRL's alignment recipe (farl_protocol.md §5.1)
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 1e-2
    assert opt.optimizer.weight_decay == 1e-5
    assert opt.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.01
    assert cfg.train_cfg.max_epochs == info['epochs'] and cfg.train_cfg.val_interval == 1
    (sched, ) = cfg.param_scheduler
    assert sched.end == info['epochs'] and sched.by_epoch
    if ds == '300w':
        assert sched.type == 'MultiStepLR' and sched.milestones == [200] and sched.gamma == 0.1
    else:
        assert sched.type == 'ConstantLR' and sched.factor == 1.0
    assert cfg.train_dataloader.batch_size * 8 == 40
    (ema, ) = cfg.custom_hooks
    assert ema.type == 'EMAHook' and ema.momentum == 0.001 and ema.update_buffers
    ckpt_hook = cfg.default_hooks.checkpoint
    assert (ckpt_hook.save_best, ckpt_hook.rule, ckpt_hook.save_last) == ('nme', 'less', True)

    # data: train split for training, every test subset in one evaluation run
    assert cfg.train_dataloader.dataset.type == info['dataset']
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == info['split']
    assert cfg.test_dataloader.dataset.split == info['split']
    assert cfg.val_evaluator.type == 'FaceAlignmentMetric'
    train_types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert train_types == ['LoadImage', 'FaceBoxCropMatrix', 'RandomFaceAffine', 'TanhWarp',
                           'RandomOcclusion', 'NoiseFusion', 'RandomGray', 'RandomGamma',
                           'RandomBoxBlur', 'PackPoseInputs']
    affine = cfg.train_dataloader.dataset.pipeline[2]
    assert (affine.shift, affine.rotation, affine.scale, affine.scale_mu, affine.distribution) \
        == (0.05, 0.174, 0.1, info['face_scale'], 'uniform')
    assert cfg.train_dataloader.dataset.pipeline[1].face_scale == 1.0
    assert cfg.test_dataloader.dataset.pipeline[1].face_scale == info['face_scale']

    from faceanalysis.datasets.transforms.alignment import ALIGNMENT_WARP_META_KEYS
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        assert tuple(loader.dataset.pipeline[-1].meta_keys) == ALIGNMENT_WARP_META_KEYS


@pytest.mark.scope('mmpose')
@pytest.mark.parametrize('name', CONFIGS)
def test_builds_full_size_model(name):
    import faceanalysis.datasets  # noqa: F401
    import faceanalysis.evaluation  # noqa: F401
    import faceanalysis.models  # noqa: F401
    from mmpose.registry import MODELS

    ds, recipe = name.split('_', 1)
    cfg = _cfg(name)
    assert cfg.default_scope == 'mmpose'
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model).eval()
        feats = model.extract_feat(torch.empty(1, 3, 512, 512))
        heatmaps = model.head.forward(feats)
    assert type(model).__name__ == 'FaceAlignmentEstimator'
    assert model.backbone_input_size == (448, 448)
    side, width = HEATMAP.get(recipe, 112), WIDTH.get(recipe, 768)
    assert [tuple(f.shape) for f in feats] == [(1, width, side * 2 // s, side * 2 // s)
                                                for s in (2, 4, 8, 16)]
    assert tuple(heatmaps.shape) == (1, DATASETS[ds]['K'], side, side)
    assert model.head.num_keypoints == DATASETS[ds]['K']
    n_params = sum(p.numel() for p in model.backbone.parameters())
    assert n_params > (250e6 if recipe == 'flip80m-l14' else 80e6)
