"""Pre-training checkpoints -> released layouts, read back unchanged where released files are read.

A tiny ``FaceCLIP`` (or MCF ``FaceViT``) is wrapped as the pre-training model's MMEngine checkpoint
(``clip.*`` + FaRL's ``mim_head.*`` + pre-training buffers, optimizer state, message hub), exported
to each format, and the export is loaded by the code that loads the real releases: backbone
presets through ``init_cfg`` (block taps equal the source tower's), ``FaceCLIP.from_pretrained``
(embeddings equal), Hugging Face ``CLIPModel.from_pretrained`` and open_clip's ``load_checkpoint``
(independent references), and the converters (key-by-key, value-by-value round trips).
"""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import EMAHook
from mmengine.logging import MessageHub
from torch import nn

import faceanalysis  # noqa: F401  (compat shims + unpickling allowlist)
from faceanalysis.converters import convert_hf_clip, convert_mae_timm, load_checkpoint_file
from faceanalysis.converters.export import (clip_hints_from_model, export_hf_clip,
                                            export_mae_timm, export_openai_clip,
                                            extract_submodel, hf_clip_config,
                                            load_pretrain_state_dict, pretrainer_kind,
                                            save_checkpoint_atomic, split_clip_pretrainer,
                                            to_hf_clip_state_dict, to_mae_timm_state_dict)
from faceanalysis.models import FaceCLIP
from faceanalysis.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'export_backbone.py')
ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=96)
SIZE, PATCH = 32, 8
TEXT = dict(vocab_size=100, context_length=12, width=32, layers=2, heads=2,
            feedforward_channels=48)
MIM_HEAD = ('mim_head.lm_transformer.resblocks.0.ln_1.weight', 'mim_head.ln_lm.weight',
            'mim_head.ln_lm.bias', 'mim_head.lm_head.weight', 'mim_head.lm_head.bias')
# Pre-training machinery that no release holds.
EXTRAS = ('gates.m_tc', 'mim_target.encoder.weight', 'loss.labels')
#: The tiny towers' head counts, which the weights can not tell (64 // 64 would say 1).
HINT_ARGS = ['--hint', 'vision.num_heads=4', '--hint', 'text.num_heads=2']


# --------------------------------------------------------------------------------- helpers
def perturb_(module: nn.Module, seed: int) -> nn.Module:
    """Random values everywhere: default inits (LayerNorm 1/0, zero biases) hide swaps."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name != 'logit_scale':
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return module.eval()


def tiny_clip(act='quick_gelu', seed=0, mask_token=True) -> FaceCLIP:
    torch.manual_seed(seed)
    model = FaceCLIP(embed_dim=16,
                     vision_cfg=dict(arch=ARCH, img_size=SIZE, patch_size=PATCH, act=act,
                                     mask_token=mask_token),
                     text_cfg=dict(TEXT, act=act))
    return perturb_(model, seed)


def mim_and_extras(seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = {MIM_HEAD[0]: (64, ), MIM_HEAD[1]: (64, ), MIM_HEAD[2]: (64, ),
              MIM_HEAD[3]: (50, 64), MIM_HEAD[4]: (50, ), EXTRAS[0]: (2, ), EXTRAS[1]: (8, 3),
              EXTRAS[2]: (4, )}
    return {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}


def mmengine_checkpoint(state_dict, params) -> dict:
    """What ``Runner.save_checkpoint`` writes, with small real optimizer / hub states."""
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    hub = MessageHub.get_instance('test_export')
    hub.update_scalar('train/loss', 1.5)
    return {'meta': {'epoch': 1, 'iter': 10, 'cfg': "model = dict(type='X')", 'seed': 0},
            'state_dict': state_dict, 'message_hub': hub.state_dict(),
            'optimizer': optimizer.state_dict(), 'param_schedulers': [{'last_epoch': 10}]}


def images(seed=1):
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def token_ids(seed=2):
    ids = torch.randint(3, 98, (2, TEXT['context_length']),
                        generator=torch.Generator().manual_seed(seed))
    ids[0, 5], ids[1, 9] = 99, 99  # the EOT: the largest id, where both poolings look
    return ids


def visual_taps(visual, x):
    """Block outputs (B, D, h, w) of a FaceViT, as a backbone with out_indices=(0, 1) gives."""
    with torch.no_grad():
        tokens, (height, width) = visual.prepare_tokens(x)
        _, taps = visual.transformer(tokens, out_indices=(0, 1))
    return [tap[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, height, width) for tap in taps]


def backbone_taps(preset, checkpoint, x, **kwargs):
    backbone = MODELS.build(dict(type=preset, arch=ARCH, img_size=SIZE, patch_size=PATCH,
                                 out_indices=(0, 1),
                                 init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
                                 **kwargs))
    backbone.init_weights()
    with torch.no_grad():
        return backbone.eval()(x)


def assert_taps_equal(ours, reference):
    assert len(ours) == len(reference) == 2
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)


def assert_same_embeddings(model, reference, atol=1e-6):
    x, ids = images(), token_ids()
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(x), reference.encode_image(x), atol=atol,
                                   rtol=0)
        torch.testing.assert_close(model.encode_text(ids), reference.encode_text(ids), atol=atol,
                                   rtol=0)
    assert torch.equal(model.logit_scale, reference.logit_scale)


def assert_state_dicts_equal(actual, expected):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape and torch.equal(actual[key], value), key


def load_tool():
    spec = importlib.util.spec_from_file_location('export_backbone_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture(scope='module')
def clip_run(tmp_path_factory):
    """A FaRL-style pre-training checkpoint of a tiny FaceCLIP (with mask token and MIM head)."""
    clip = tiny_clip()
    state_dict = {f'clip.{key}': value for key, value in clip.state_dict().items()}
    state_dict.update(mim_and_extras())
    path = str(tmp_path_factory.mktemp('clip_run') / 'iter_10.pth')
    torch.save(mmengine_checkpoint(state_dict, clip.parameters()), path)
    return SimpleNamespace(path=path, clip=clip, state_dict=state_dict)


# --------------------------------------------------------------------------------- reading
def test_load_and_split_pretrain_checkpoint(clip_run):
    state_dict = load_pretrain_state_dict(clip_run.path)
    assert_state_dicts_equal(state_dict, clip_run.state_dict)
    assert pretrainer_kind(state_dict) == 'clip'
    assert_state_dicts_equal(extract_submodel(state_dict, 'clip'), clip_run.clip.state_dict())

    weights, dropped = split_clip_pretrainer(state_dict, mim=True)
    assert sorted(dropped) == sorted(EXTRAS)
    source = clip_run.state_dict
    assert torch.equal(weights['visual.lm_head.weight'], source['mim_head.lm_head.weight'])
    assert torch.equal(weights['visual.lm_transformer.resblocks.0.ln_1.weight'],
                       source[MIM_HEAD[0]])
    assert torch.equal(weights['visual.mask_token'], source['clip.visual.mask_token'])

    weights, dropped = split_clip_pretrainer(state_dict, mim=False)
    assert sorted(dropped) == sorted(EXTRAS + MIM_HEAD + ('clip.visual.mask_token', ))
    assert not any(key.startswith(('visual.lm_', 'visual.ln_lm', 'visual.mask_token'))
                   for key in weights)

    with pytest.raises(KeyError, match='outside FaRL'):
        split_clip_pretrainer({**state_dict, 'mim_head.decoder.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'key groups are: gates\.\* \(1\), teacher\.\* \(1\)'):
        pretrainer_kind({'teacher.w': torch.zeros(1), 'gates.m': torch.zeros(1)}, 'x.pth')
    with pytest.raises(KeyError, match=r'no online_encoder\.\* keys.*clip\.\*'):
        extract_submodel(state_dict, 'online_encoder.', 'x.pth')


# --------------------------------------------------------------------------------- FaRL / OpenAI
def test_farl_export_loads_unchanged(clip_run, tmp_path):
    import open_clip
    out = str(tmp_path / 'farl.pth')
    hints = clip_hints_from_model(clip_run.clip)
    save_checkpoint_atomic(export_openai_clip(clip_run.state_dict, mim=True, hints=hints), out)
    assert os.listdir(tmp_path) == ['farl.pth']  # no temporary file left behind
    saved = load_checkpoint_file(out)
    assert set(saved) == {'state_dict', 'meta'}
    released = saved['state_dict']
    # The released ep64 layout: OpenAI CLIP keys plus the MIM head under visual.
    expected = {**clip_run.clip.state_dict(),
                **{'visual.' + key[len('mim_head.'):]: clip_run.state_dict[key]
                   for key in MIM_HEAD}}
    assert_state_dicts_equal(released, expected)

    # (a) the FaRL backbone preset reads it as it reads FaRL's release
    x = images()
    assert_taps_equal(backbone_taps('FaRL', out, x), visual_taps(clip_run.clip.visual, x))
    # (b) FaceCLIP: head counts come from meta['hints'] (64-wide towers with 4 and 2 heads)
    model = FaceCLIP.from_pretrained(out)
    assert model.visual.transformer.resblocks[0].attn.num_heads == 4
    assert model.transformer.resblocks[0].attn.num_heads == 2
    assert_same_embeddings(model, clip_run.clip)
    assert 'visual.lm_head.weight' in model.ignored_checkpoint_keys

    # 'openai' (no MIM head) through open_clip's own strict loader, as an independent reference
    out = str(tmp_path / 'openai.pth')
    save_checkpoint_atomic(export_openai_clip(clip_run.state_dict, mim=False), out)
    assert_state_dicts_equal(load_checkpoint_file(out)['state_dict'],
                             {k: v for k, v in clip_run.clip.state_dict().items()
                              if k != 'visual.mask_token'})
    reference = open_clip.model.CLIP(
        embed_dim=16, quick_gelu=True,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=2, width=64, head_width=16,
                                                 mlp_ratio=1.5, patch_size=PATCH,
                                                 image_size=SIZE),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=12, vocab_size=100, width=32,
                                             heads=2, layers=2, mlp_ratio=1.5))
    open_clip.load_checkpoint(reference, out, strict=True)
    assert_same_embeddings(reference.eval(), clip_run.clip, atol=1e-5)


def test_alip_export_is_a_flat_ddp_dict(clip_run, tmp_path):
    out = str(tmp_path / 'ALIP_tiny.pt')
    exported = export_openai_clip(clip_run.state_dict, flavor='alip')
    save_checkpoint_atomic(exported, out)
    saved = load_checkpoint_file(out)
    assert all(isinstance(value, torch.Tensor) for value in saved.values())
    # ALIP's evaluation strips module. and loads strictly: no MIM head, no mask token, no meta.
    assert_state_dicts_equal({key[len('module.'):]: value for key, value in saved.items()},
                             {k: v for k, v in clip_run.clip.state_dict().items()
                              if k != 'visual.mask_token'})
    x = images()
    assert_taps_equal(backbone_taps('FaRL', out, x), visual_taps(clip_run.clip.visual, x))
    # no room for hints in a flat dict: say what the weights can not
    model = FaceCLIP.from_pretrained(out, vision_heads=4, text_heads=2)
    assert_same_embeddings(model, clip_run.clip)


# --------------------------------------------------------------------------------- Hugging Face
@pytest.mark.parametrize('act', ['quick_gelu', 'gelu_tanh'])
def test_hf_export_runs_in_transformers(tmp_path, act):
    transformers = pytest.importorskip('transformers')
    clip = tiny_clip(act=act, seed=3, mask_token=False)
    state_dict = clip.state_dict()
    out = str(tmp_path / 'FLIP-tiny')
    written = export_hf_clip(state_dict, out, clip_hints_from_model(clip))
    assert sorted(os.listdir(out)) == ['config.json', 'model.safetensors']
    assert written == [osp.join(out, 'config.json'), osp.join(out, 'model.safetensors')]
    assert sorted(os.listdir(tmp_path)) == ['FLIP-tiny']

    # (c) transformers reads it with no missing / unexpected keys and computes our embeddings
    reference, info = transformers.CLIPModel.from_pretrained(out, output_loading_info=True)
    assert not any(info[name] for name in ('missing_keys', 'unexpected_keys', 'mismatched_keys'))
    reference.eval()
    config = reference.config
    assert config.vision_config.hidden_act == {'quick_gelu': 'quick_gelu',
                                               'gelu_tanh': 'gelu_pytorch_tanh'}[act]
    assert (config.vision_config.num_attention_heads, config.text_config.num_attention_heads,
            config.vision_config.image_size, config.vision_config.patch_size,
            config.projection_dim) == (4, 2, SIZE, PATCH, 16)
    x, ids = images(), token_ids()
    with torch.no_grad():
        image = reference.get_image_features(pixel_values=x)
        text = reference.get_text_features(input_ids=ids)
        # transformers 5 returns a ModelOutput whose pooler_output holds the projected features
        image = getattr(image, 'pooler_output', image)
        text = getattr(text, 'pooler_output', text)
        torch.testing.assert_close(image, clip.encode_image(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(text, clip.encode_text(ids), atol=1e-5, rtol=0)
    assert torch.equal(reference.logit_scale, clip.logit_scale)

    # the exact inverse of the hf_clip converter, both ways, key by key and value by value
    assert_state_dicts_equal(convert_hf_clip(to_hf_clip_state_dict(state_dict)), state_dict)
    hf_state_dict = reference.state_dict()
    assert_state_dicts_equal(to_hf_clip_state_dict(convert_hf_clip(hf_state_dict)),
                             hf_state_dict)

    # (b) FaceCLIP.from_pretrained reads the directory like FLIP-80M's (act/heads from config)
    assert_same_embeddings(FaceCLIP.from_pretrained(out), clip)
    # (a) the FLIP80M backbone preset
    x = images()
    assert_taps_equal(backbone_taps('FLIP80M', out, x, act=act), visual_taps(clip.visual, x))


def test_hf_export_refuses_what_clip_model_would_run_differently(tmp_path):
    clip = tiny_clip(mask_token=False)
    state_dict = clip.state_dict()
    hints = clip_hints_from_model(clip)
    cases = [
        (dict(vision=dict(pool='avg_all')), {}, 'pools the CLS token'),
        (dict(text=dict(causal=False)), {}, 'is causal'),
        (dict(text=dict(pool='first')), {}, 'pools at the EOS'),
        ({}, {'visual.conv1.bias': torch.zeros(64)}, 'patch-embedding bias'),
    ]
    for extra_hints, extra_keys, message in cases:
        merged = {tower: {**hints[tower], **extra_hints.get(tower, {})} for tower in hints}
        with pytest.raises(ValueError, match=message):
            export_hf_clip({**state_dict, **extra_keys}, tmp_path / 'x', merged)
    without_ln_pre = {k: v for k, v in state_dict.items() if not k.startswith('visual.ln_pre')}
    with pytest.raises(ValueError, match='ln_pre'):
        hf_clip_config(without_ln_pre, hints)
    with pytest.raises(KeyError, match='visual.lm_head.weight'):
        to_hf_clip_state_dict({**state_dict, 'visual.lm_head.weight': torch.zeros(2, 64)})
    assert os.listdir(tmp_path) == []  # nothing half-written


# --------------------------------------------------------------------------------- MCF
def mcf_encoder(seed):
    torch.manual_seed(seed)
    return perturb_(MODELS.build(dict(type='MCF', arch=ARCH, img_size=SIZE, patch_size=PATCH,
                                      final_norm=True)), seed)


@pytest.fixture(scope='module')
def mcf_run(tmp_path_factory):
    online, target = mcf_encoder(0), mcf_encoder(7)
    state_dict = {f'online_encoder.{k}': v for k, v in online.state_dict().items()}
    state_dict.update({f'target_encoder.{k}': v for k, v in target.state_dict().items()})
    state_dict.update({'online_projector.0.weight': torch.randn(16, 64),
                       'predictor.0.weight': torch.randn(16, 16),
                       'decoder_embed.weight': torch.randn(32, 64),
                       'decoder_blocks.0.ln_1.weight': torch.randn(32),
                       'teacher.conv1.weight': torch.randn(64, 3, PATCH, PATCH)})
    path = str(tmp_path_factory.mktemp('mcf_run') / 'epoch_1.pth')
    torch.save(mmengine_checkpoint(state_dict, online.parameters()), path)
    return SimpleNamespace(path=path, online=online, target=target, state_dict=state_dict)


def test_mae_timm_export_is_the_exact_inverse(mcf_run):
    from functools import partial

    from timm.models.vision_transformer import VisionTransformer
    visual = mcf_run.online.state_dict()
    timm_layout = to_mae_timm_state_dict(visual)
    assert timm_layout['cls_token'].shape == (1, 1, 64)
    assert timm_layout['pos_embed'].shape == (1, 1 + (SIZE // PATCH)**2, 64)
    assert {'patch_embed.proj.bias', 'norm.weight', 'blocks.1.attn.qkv.weight',
            'blocks.1.mlp.fc2.bias'} <= set(timm_layout)
    assert_state_dicts_equal(convert_mae_timm(timm_layout),
                             {f'visual.{k}': v for k, v in visual.items()})
    # and from timm's side: a real timm ViT survives timm -> ours -> timm unchanged
    vit = VisionTransformer(img_size=SIZE, patch_size=PATCH, embed_dim=64, depth=2, num_heads=4,
                            mlp_ratio=1.5, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                            num_classes=0)
    assert_state_dicts_equal(to_mae_timm_state_dict(convert_mae_timm(vit.state_dict())),
                             vit.state_dict())
    with pytest.raises(KeyError, match='mask_token'):
        to_mae_timm_state_dict({**visual, 'mask_token': torch.zeros(64)})
    with pytest.raises(ValueError, match='prefix'):
        export_mae_timm(visual, prefix='encoder.')


@pytest.mark.parametrize('which', ['online', 'target'])
def test_mcf_export_loads_unchanged(mcf_run, tool, tmp_path, capsys, which):
    out = str(tmp_path / f'mcf_{which}.pth')
    argv = [mcf_run.path, out] + (['--mcf-encoder', 'target'] if which == 'target' else [])
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'format       mcf' in printed and 'teacher.* (1)' in printed
    model = load_checkpoint_file(out)['model']
    assert all(key.startswith(f'{which}_encoder.') for key in model)
    source = getattr(mcf_run, which)
    x = images()
    # (d) the MCF preset takes the encoder as it takes MCF's release (online one when present)
    assert_taps_equal(backbone_taps('MCF', out, x), visual_taps(source, x))


# --------------------------------------------------------------------------------- EMA
class TinyPretrainer(nn.Module):
    """The pre-training model's shape: ``clip`` plus a MIM head and a non-trainable buffer."""

    def __init__(self):
        super().__init__()
        self.clip = tiny_clip(seed=4)
        self.mim_head = nn.Module()
        self.mim_head.lm_head = nn.Linear(64, 50)
        self.register_buffer('gate_ema', torch.zeros(2))


def test_ema_weights_as_mmengine_saves_them(tmp_path, tool, capsys):
    model = TinyPretrainer()
    runner = SimpleNamespace(model=model)
    hook = EMAHook(momentum=0.5)
    hook.before_run(runner)
    averaged = hook.ema_model.module
    perturb_(averaged, seed=9)  # stands in for the running average
    checkpoint = mmengine_checkpoint(dict(model.state_dict()), model.parameters())
    hook.before_save_checkpoint(runner, checkpoint)  # swaps: state_dict = EMA weights
    path = str(tmp_path / 'ema.pth')
    torch.save(checkpoint, path)

    assert_state_dicts_equal(load_pretrain_state_dict(path), model.state_dict())
    assert_state_dicts_equal(load_pretrain_state_dict(path, use_ema=True), averaged.state_dict())

    out_ema, out_trained = str(tmp_path / 'ema_farl.pth'), str(tmp_path / 'trained_farl.pth')
    assert tool.main([path, out_ema, '--ema', *HINT_ARGS]) == 0
    assert 'EMA weights' in capsys.readouterr().out
    assert tool.main([path, out_trained, *HINT_ARGS]) == 0
    assert_same_embeddings(FaceCLIP.from_pretrained(out_ema), averaged.clip)
    assert_same_embeddings(FaceCLIP.from_pretrained(out_trained), model.clip)
    assert load_checkpoint_file(out_ema)['meta']['ema'] is True

    # no EMA in the run: --ema is an error, not a silent fallback
    plain = str(tmp_path / 'plain.pth')
    torch.save(mmengine_checkpoint(dict(model.state_dict()), model.parameters()), plain)
    with pytest.raises(KeyError, match='no ema_state_dict'):
        load_pretrain_state_dict(plain, use_ema=True)
    assert tool.main([plain, str(tmp_path / 'x.pth'), '--ema']) == 1
    assert 'no ema_state_dict' in capsys.readouterr().err


# --------------------------------------------------------------------------------- CLI
def test_cli_subprocess(clip_run, tool, tmp_path):
    from faceanalysis.converters.export import EXPORT_FORMATS
    assert tool.FORMATS == EXPORT_FORMATS
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get(
        'PYTHONPATH')])))
    for name in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE'):
        env.pop(name, None)
    help_run = subprocess.run([sys.executable, TOOL, '--help'], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=120)
    assert help_run.returncode == 0 and '--format' in help_run.stdout and '--ema' in help_run.stdout
    out = str(tmp_path / 'farl_cli.pth')
    run = subprocess.run([sys.executable, TOOL, clip_run.path, out, *HINT_ARGS],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    # auto-detected: clip.* with a MIM head -> FaRL's layout; the dropped groups are named
    assert 'format       farl' in run.stdout
    assert 'dropped      3 tensors: gates.* (1), loss.* (1), mim_target.* (1)' in run.stdout
    assert 'FaRL MIM head: 6 tensors' in run.stdout
    assert_same_embeddings(FaceCLIP.from_pretrained(out), clip_run.clip)


def test_cli_formats_hints_and_errors(clip_run, mcf_run, tool, tmp_path, capsys):
    # hints from the training config: its FaceCLIP is built on the meta device and read
    clip_cfg = (f'embed_dim=16, vision_cfg=dict(arch={ARCH!r}, img_size={SIZE}, '
                f'patch_size={PATCH}, mask_token=True), text_cfg={TEXT!r}')
    config = tmp_path / 'tiny_clip.py'  # a pretrainer: only model.clip is built
    config.write_text(f'model = dict(type="FaRLPretrainer", clip=dict({clip_cfg}))\n')
    plain = tmp_path / 'plain.py'  # any other model is built whole
    plain.write_text(f'model = dict(type="FaceCLIP", {clip_cfg})\n')
    expected = clip_hints_from_model(clip_run.clip)
    assert tool.hints_from_config(str(config)) == tool.hints_from_config(str(plain)) == expected
    plain.unlink()
    out = str(tmp_path / 'hf')
    assert tool.main([clip_run.path, out, '--format', 'hf', '--config', str(config)]) == 0
    printed = capsys.readouterr().out
    assert 'assumed' not in printed and 'mim_head.* (5)' in printed
    with open(osp.join(out, 'config.json')) as f:
        hf_config = json.load(f)
    assert hf_config['vision_config']['num_attention_heads'] == 4
    assert hf_config['text_config']['num_attention_heads'] == 2
    assert_same_embeddings(FaceCLIP.from_pretrained(out), clip_run.clip)

    # refuses to overwrite without --force; with it the directory is replaced atomically
    assert tool.main([clip_run.path, out, '--format', 'hf']) == 1
    assert 'exists; pass --force' in capsys.readouterr().err
    assert tool.main([clip_run.path, out, '--format', 'hf', '--force', *HINT_ARGS]) == 0
    assert sorted(os.listdir(tmp_path)) == ['hf', 'tiny_clip.py']
    # without hints the tool says what it assumed (a 64-wide tower: 1 head)
    openai_out = str(tmp_path / 'openai.pth')
    assert tool.main([clip_run.path, openai_out, '--format', 'openai']) == 0
    assert 'num_heads assumed' in capsys.readouterr().out

    errors = [
        ([clip_run.path, str(tmp_path / 'a.pth'), '--format', 'mcf'], 'no online_encoder'),
        ([mcf_run.path, str(tmp_path / 'b'), '--format', 'hf'], r'no clip\.\* keys'),
        ([clip_run.path, str(tmp_path / 'c.pth'), '--hint', 'vision.heads=4'], 'NAME one of'),
        ([clip_run.path, str(tmp_path / 'c.pth'), '--hint', 'text.act=relu'], 'act must be'),
        ([mcf_run.path, str(tmp_path / 'c.pth'), *HINT_ARGS], 'not for --format mcf'),
        ([clip_run.path, str(tmp_path / 'c.pth'), '--mcf-encoder', 'target'],
         '--mcf-encoder is for --format mcf, not farl'),
        ([str(tmp_path / 'missing.pth'), str(tmp_path / 'd.pth')], 'not found'),
    ]
    bad = str(tmp_path / 'unknown.pth')
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(1),
                               'head.fc.weight': torch.zeros(1)}}, bad)
    errors.append(([bad, str(tmp_path / 'e.pth')],
                   r'neither clip\.\* keys.*key groups are: backbone\.\* \(1\), head\.\* \(1\)'))
    for argv, message in errors:
        assert tool.main(argv) == 1, argv
        assert re.search(message, capsys.readouterr().err), message
