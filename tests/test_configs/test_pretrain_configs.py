"""Every configs/pretrain/*.py: it parses, its model builds, and the recipe's numbers add up.

Models are built on the ``meta`` device (no memory, no initialisation), with the model's data
preprocessor built beforehand on the CPU (FaRLPretrainer reads its mean/std values at
construction, which a meta tensor does not have). Two overrides, both because a constructor
reads real files or values the test does not need:

* frozen teachers load their checkpoint at construction (FrozenViTTeacher, FaRL's
  TeacherFeatureTarget): ``checkpoint=None, allow_random_init=True``;
* TeacherFeatureTarget compares the student's and teacher's normalisation statistics with
  ``torch.equal``, which has no meta kernel: for meta tensors it answers False here (it only
  decides whether the teacher re-normalises its input; no count depends on it).

Init checkpoints given through ``init_cfg`` (FLIP-80M's CLIPModel directory) are read by
``init_weights``, never at construction, so they need no override.

The tiny CPU configs are run end to end by tests/test_tools/test_pretrain_toy_e2e.py and
test_pretrain_mcf_alip_e2e.py (slow); here they are parsed and built like the others.
"""
import os.path as osp
from glob import glob

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import faceanalysis.engine  # noqa: F401  (registers the loop, hooks and wrapper)
import faceanalysis.models  # noqa: F401
from faceanalysis.registry import MODELS
from tests.test_models.test_alip import alip_param_scheduler

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs', 'pretrain')
PAPER = ['farl-b16_itc-mim_laionface', 'flip-b16_mask50_laionface', 'flip80m-b16_finetune',
         'mcf-b16_laionface-cropped', 'alip-b32_yfcc15m']
TINY = ['farl-tiny_toy-shapes_flip-mask50_cpu', 'mcf-tiny_face-crops_cpu',
        'alip-tiny_toy-shapes_cpu']
#: Frozen-teacher checkpoints read at construction (see the module docstring).
TEACHER_OVERRIDES = {
    'farl-b16_itc-mim_laionface': {'model.mim_target.checkpoint': None,
                                   'model.mim_target.allow_random_init': True},
    'mcf-b16_laionface-cropped': {'model.teacher.checkpoint': None,
                                  'model.teacher.allow_random_init': True},
}
#: Image-tower parameters (frozen position tables included; OpenAI-layout towers include the
#: 768 x 512 output projection, FaRL's also its mask token).
IMAGE_TOWER_PARAMS = {
    'farl-b16_itc-mim_laionface': 86_193_408,  # OpenAI ViT-B/16 visual + mask token
    'flip-b16_mask50_laionface': 86_191_872,  # + patch bias, no ln_pre, sin-cos table
    'flip80m-b16_finetune': 86_192_640,  # OpenAI ViT-B/16 visual
    'mcf-b16_laionface-cropped': 85_798_656,  # timm vit_base_patch16_224 without head
    'alip-b32_yfcc15m': 87_849_216,  # OpenAI ViT-B/32 visual
}
NUM_GPUS = 8


def _cfg(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))
    cfg.merge_from_dict(TEACHER_OVERRIDES.get(name, {}))
    return cfg


def _build_on_meta(model_cfg, monkeypatch):
    equal = torch.equal
    monkeypatch.setattr(torch, 'equal',
                        lambda a, b: False if a.is_meta or b.is_meta else equal(a, b))
    model_cfg = model_cfg.to_dict()
    if isinstance(model_cfg.get('data_preprocessor'), dict):
        model_cfg['data_preprocessor'] = MODELS.build(model_cfg['data_preprocessor'])
    with torch.device('meta'):
        return MODELS.build(model_cfg)


def _image_tower(model):
    return model.online_encoder if hasattr(model, 'online_encoder') else model.clip.visual


def _count(module):
    return sum(param.numel() for param in module.parameters())


def _optimizer(cfg, model):
    """The recipe's optimizer on the meta model (AmpOptimWrapper needs a GPU: plain wrapper)."""
    wrapper = cfg.optim_wrapper.to_dict()
    wrapper['type'] = 'OptimWrapper'
    for amp_only in ('dtype', 'loss_scale'):
        wrapper.pop(amp_only, None)
    return build_optim_wrapper(model, wrapper)


def _weight_decay_by_name(model, optim_wrapper):
    names = {id(param): name for name, param in model.named_parameters()}
    return {names[id(param)]: group['weight_decay']
            for group in optim_wrapper.optimizer.param_groups for param in group['params']}


def test_config_set_is_complete():
    found = sorted(osp.splitext(osp.basename(p))[0] for p in glob(osp.join(CONFIG_DIR, '*.py')))
    assert found == sorted(PAPER + TINY)


@pytest.mark.scope('faceanalysis')
@pytest.mark.parametrize('name', PAPER + TINY)
def test_config_parses_and_builds_on_meta(name, monkeypatch):
    cfg = _cfg(name)
    assert cfg.default_scope == 'faceanalysis'
    assert cfg.train_cfg.type == 'StreamingIterBasedTrainLoop'
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    model = _build_on_meta(cfg.model, monkeypatch)
    if name in IMAGE_TOWER_PARAMS:
        assert _count(_image_tower(model)) == IMAGE_TOWER_PARAMS[name]
    # every scheduler ends at max_iters (none outlives or stops short of the run)
    assert max(s.get('end', s.get('total_steps')) for s in cfg.param_scheduler) == \
        cfg.train_cfg.max_iters
    # validation is configured all or nothing (MMEngine's Runner demands it)
    val = [cfg.get(key) is None for key in ('val_dataloader', 'val_cfg', 'val_evaluator')]
    assert all(val) or not any(val), name


def test_global_batches_and_schedules_of_the_existing_recipes():
    farl = _cfg('farl-b16_itc-mim_laionface')
    assert farl.train_dataloader.batch_size * NUM_GPUS == 5120
    assert farl.train_cfg.max_iters == 16 * 20_000_000 // 5120 == 62_500
    flip = _cfg('flip-b16_mask50_laionface')
    assert flip.train_dataloader.batch_size * NUM_GPUS == 32_768
    assert flip.train_cfg.max_iters == 320_000_000 // 32_768 + 128_000_000 // 32_768 == 13_671
    flip80m = _cfg('flip80m-b16_finetune')
    global_batch = (flip80m.train_dataloader.batch_size * NUM_GPUS
                    * flip80m.optim_wrapper.accumulative_counts)
    assert global_batch == 10_240
    assert flip80m.train_cfg.max_iters == 25_000 * 8  # micro-batches


@pytest.mark.scope('faceanalysis')
def test_flip80m_decays_all_but_biases_and_layernorms(monkeypatch):
    """TencentPretrain's rule: no decay on names with bias / gamma / beta; the temperature,
    embeddings and projections are decayed."""
    cfg = _cfg('flip80m-b16_finetune')
    model = _build_on_meta(cfg.model, monkeypatch)
    decay = _weight_decay_by_name(model, _optimizer(cfg, model))
    for name, value in decay.items():
        expected = 0. if ('bias' in name or '.ln_' in name or 'ln_final' in name) else 0.01
        assert value == expected, name
    assert decay['clip.visual.transformer.resblocks.0.attn.in_proj_bias'] == 0.
    assert decay['clip.logit_scale'] == decay['clip.visual.class_embedding'] == 0.01


@pytest.mark.scope('faceanalysis')
def test_mcf_recipe(monkeypatch):
    cfg = _cfg('mcf-b16_laionface-cropped')
    accumulation = cfg.optim_wrapper.accumulative_counts
    assert accumulation == 8
    global_batch = cfg.train_dataloader.batch_size * NUM_GPUS * accumulation
    assert global_batch == 4096
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.5e-4 * 4096 / 256) == 2.4e-3
    assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.95)
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'clip_grad' not in cfg.optim_wrapper

    # 16 epochs of 20M images, counted in micro-batches; one warm-up epoch; cosine to 0
    iters_per_epoch = 20_000_000 // 4096 * accumulation
    assert cfg.train_cfg.max_iters == 16 * iters_per_epoch == 624_896
    assert cfg.train_cfg.max_iters % accumulation == 0
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == iters_per_epoch
    assert cosine.type == 'CosineAnnealingLR' and cosine.eta_min == 0
    assert (cosine.begin, cosine.end) == (iters_per_epoch, cfg.train_cfg.max_iters)

    assert cfg.randomness == dict(seed=0, diff_rank_seed=True)
    assert cfg.val_cfg is None and cfg.get('val_dataloader') is None
    assert dict(type='MCFMomentumHook') in cfg.custom_hooks
    data = cfg.train_dataloader
    assert data.sampler.type == 'InfiniteSampler' and data.dataset.type == 'LMDBImages'
    assert [t['type'] for t in data.dataset.pipeline] == [
        'ResizeShortCenterCrop', 'RandomFlip', 'PackImageText']
    assert data.dataset.pipeline[-1]['with_text'] is False

    model = _build_on_meta(cfg.model, monkeypatch)
    assert (model.momentum, model.momentum_update, model.mask_ratio) == (0.99, 'per_step', 0.75)
    assert model.contrastive_loss.temperature == 0.2
    assert (model.feature_loss.norm_dim, model.feature_loss.loss_weight) == (1, 1000.)
    assert model.teacher.out_indices == (2, 5, 8, 11) and model.teacher.grad_checkpointing
    assert cfg.model.teacher.checkpoint is None  # overridden here; the recipe names the file
    assert Config.fromfile(osp.join(CONFIG_DIR, 'mcf-b16_laionface-cropped.py')) \
        .model.teacher.checkpoint == 'checkpoints/mocov3-vit-b-300ep.pth.tar'
    mean = model.data_preprocessor.mean.flatten().tolist()
    assert mean == pytest.approx([123.675, 116.28, 103.53])  # ImageNet, as MCF's Normalize

    # timm's add_weight_decay: 1-D tensors and biases undecayed, everything else (the CLS and
    # mask tokens included) decayed; frozen tensors never train.
    decay = _weight_decay_by_name(model, _optimizer(cfg, model))
    for name in ('online_encoder.class_embedding', 'decoder.mask_token',
                 'online_encoder.conv1.weight', 'online_encoder.transformer.resblocks.0.attn'
                 '.in_proj_weight', 'decoder.pred.weight', 'predictor.0.weight'):
        assert decay[name] == 0.05, name
    for name in ('online_encoder.conv1.bias', 'online_encoder.ln_post.weight',
                 'online_encoder.transformer.resblocks.0.attn.in_proj_bias',
                 'online_projector.1.weight', 'decoder.pred.bias'):
        assert decay[name] == 0., name
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert not any(name.startswith(('teacher.', 'target_')) for name in trainable)
    assert 'online_encoder.positional_embedding' not in trainable  # fixed sin-cos table


@pytest.mark.scope('faceanalysis')
def test_alip_recipe(monkeypatch):
    cfg = _cfg('alip-b32_yfcc15m')
    assert cfg.train_dataloader.batch_size * NUM_GPUS == 4096
    assert cfg.optim_wrapper.get('accumulative_counts', 1) == 1
    steps_per_epoch = 15_061_515 // NUM_GPUS // 512 + 1
    assert steps_per_epoch == 3678
    max_iters = cfg.train_cfg.max_iters
    assert max_iters == 32 * steps_per_epoch == 117_696
    assert cfg.param_scheduler == alip_param_scheduler(max_iters, max_lr=1e-3, pct_start=0.1)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.lr, optimizer.weight_decay) == (1e-3, 0.2)
    assert optimizer.betas[0] == 0.95  # the cycled beta1 starts at torch's max_momentum
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0)
    assert cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale['growth_interval'] == 200

    data = cfg.train_dataloader.dataset
    assert data.aux_text_key == 'cap.txt' and data.num_samples == 15_061_515
    crop = data.pipeline[0]
    assert (crop['type'], crop['size'], crop['scale'], crop['ratio'], crop['interpolation'],
            crop['max_attempts']) == ('RandomResizedCropImage', 224, (0.7, 1.0), (0.8, 1.25),
                                      'bilinear', 100)
    assert data.pipeline[2] == dict(type='TokenizeText', keys=('text', 'text_aux'),
                                    context_length=77)
    assert cfg.val_evaluator.type == 'ImageTextRetrievalMetric'

    model = _build_on_meta(cfg.model, monkeypatch)
    assert model.logit_scale_clamp == 'param'
    from faceanalysis.converters.export import clip_hints_from_model
    hints = clip_hints_from_model(model.clip)
    assert hints['vision']['act'] == hints['text']['act'] == 'gelu'  # erf GELU, not QuickGELU
    assert model.clip.visual.patch_size == 32
    # weight decay on every parameter: a single group
    optim_wrapper = _optimizer(cfg, model)
    assert len(optim_wrapper.optimizer.param_groups) == 1
    assert optim_wrapper.optimizer.param_groups[0]['weight_decay'] == 0.2
    mean = model.data_preprocessor.mean.flatten().tolist()
    assert mean == pytest.approx([122.7709383, 116.7460125, 104.09373615])  # CLIP statistics
