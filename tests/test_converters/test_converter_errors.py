"""Converters: layout detection, refusals with clear messages, and the full-size FaRL backbone."""
import os
import pickle
from functools import partial

import open_clip
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

import faceanalysis  # noqa: F401  (compat shims + unpickling allowlist)
from faceanalysis.converters import (UnsafeCheckpointError, convert_hf_clip, convert_mae_timm,
                                     convert_state_dict, detect_layout, load_checkpoint_file,
                                     load_visual_state_dict, resolve_checkpoint)
from faceanalysis.models.backbones import FaRL
from faceanalysis.registry import CHECKPOINT_CONVERTERS, MODELS

TINY = dict(embed_dims=64, num_layers=3, num_heads=4, feedforward_channels=256)


def tiny(preset, checkpoint):
    return MODELS.build(dict(type=preset, arch=TINY, img_size=32, patch_size=8,
                             out_indices=(0, 1, 2),
                             init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))))


def timm_state_dict():
    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4,
                             mlp_ratio=4., qkv_bias=True, num_classes=0,
                             norm_layer=partial(nn.LayerNorm, eps=1e-6)).state_dict()


def openai_state_dict():
    torch.manual_seed(0)
    vision = open_clip.model.CLIPVisionCfg(layers=3, width=64, head_width=16, patch_size=8,
                                           image_size=32)
    text = open_clip.model.CLIPTextCfg(context_length=16, vocab_size=100, width=32, heads=2,
                                       layers=2)
    return open_clip.model.CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text,
                                quick_gelu=True).state_dict()


# --------------------------------------------------------------------------------- detection
def test_registry_has_one_converter_per_layout():
    assert {'openai_clip', 'hf_clip', 'mae_timm'} <= set(CHECKPOINT_CONVERTERS.module_dict)
    assert CHECKPOINT_CONVERTERS.get('hf_clip') is convert_hf_clip


def test_wrappers_and_prefixes_are_resolved():
    timm_sd, clip_sd = timm_state_dict(), openai_state_dict()
    cases = [
        ({'model': {f'online_encoder.{k}': v for k, v in timm_sd.items()}},
         'mae_timm', 'online_encoder.'),
        ({'model': {f'target_encoder.{k}': v for k, v in timm_sd.items()}},
         'mae_timm', 'target_encoder.'),
        ({'state_dict': {f'module.base_encoder.{k}': v for k, v in timm_sd.items()}},
         'mae_timm', 'base_encoder.'),
        ({'module': {f'_orig_mod.{k}': v for k, v in timm_sd.items()}}, 'mae_timm', ''),
        ({'state_dict': {f'backbone.{k}': v for k, v in clip_sd.items()}, 'meta': {}},
         'openai_clip', 'backbone.'),
        ({'model': {'module': clip_sd}}, 'openai_clip', ''),
    ]
    for checkpoint, layout, prefix in cases:
        _, found_layout, found_prefix = resolve_checkpoint(checkpoint)
        assert (found_layout, found_prefix) == (layout, prefix)
        assert detect_layout(checkpoint) == layout


def test_online_encoder_preferred_over_target_encoder():
    online, target = timm_state_dict(), {k: v + 1 for k, v in timm_state_dict().items()}
    checkpoint = {'model': {**{f'target_encoder.{k}': v for k, v in target.items()},
                            **{f'online_encoder.{k}': v for k, v in online.items()}}}
    state_dict, layout, prefix = convert_state_dict(checkpoint)
    assert prefix == 'online_encoder.'
    assert torch.equal(state_dict['visual.conv1.weight'], online['patch_embed.proj.weight'])


def test_unknown_layout_names_file_and_keys():
    with pytest.raises(ValueError, match=r'mystery\.pth.*unknown checkpoint layout.*foo\.weight'):
        detect_layout({'state_dict': {'foo.weight': torch.zeros(1)}}, source='mystery.pth')


def test_bare_visual_tower_gets_prefix():
    model = FaRL(arch=TINY, img_size=32, patch_size=8)
    state_dict, layout, _ = convert_state_dict(model.state_dict())
    assert layout == 'openai_clip' and set(state_dict) == {
        f'visual.{key}' for key in model.state_dict()}


def test_mae_timm_variants_convert_exactly():
    state_dict = timm_state_dict()
    # timm ``no_embed_class``: grid rows only -> a zero CLS row; qkv_bias=False -> zero bias.
    state_dict['pos_embed'] = state_dict['pos_embed'][:, 1:]
    del state_dict['blocks.0.attn.qkv.bias']
    out = convert_mae_timm(state_dict)
    table = out['visual.positional_embedding']
    assert table.shape == (17, 64) and torch.equal(table[0], torch.zeros(64))
    assert torch.equal(out['visual.transformer.resblocks.0.attn.in_proj_bias'], torch.zeros(192))
    with pytest.raises(KeyError, match='ls1.gamma'):
        convert_mae_timm({**timm_state_dict(), 'blocks.0.ls1.gamma': torch.ones(64)})


def test_hf_converter_refuses_unknown_and_incomplete_keys():
    with pytest.raises(KeyError, match='classifier.weight'):
        convert_hf_clip({'vision_model.embeddings.class_embedding': torch.zeros(4),
                         'classifier.weight': torch.zeros(2, 4)})
    with pytest.raises(KeyError, match='q/k/v'):
        layer = 'vision_model.encoder.layers.0.self_attn'
        convert_hf_clip({f'{layer}.q_proj.weight': torch.zeros(4, 4),
                         f'{layer}.k_proj.weight': torch.zeros(4, 4)})


# --------------------------------------------------------------------------------- refusals
def test_wrong_preset_is_a_key_error_naming_the_switch(tmp_path):
    mcf = tmp_path / 'mcf.pth'
    torch.save({'model': {f'online_encoder.{k}': v for k, v in timm_state_dict().items()}}, mcf)
    with pytest.raises(KeyError, match=r'patch_bias.*preset'):
        tiny('FaRL', mcf).init_weights()
    farl = tmp_path / 'farl.pth'
    torch.save({'state_dict': openai_state_dict()}, farl)
    with pytest.raises(KeyError, match=r'patch_bias.*preset'):
        tiny('MCF', farl).init_weights()
    tiny('MCF', mcf).init_weights()  # the right preset loads


def test_checkpoint_without_visual_keys(tmp_path):
    text_only = {k: v for k, v in openai_state_dict().items() if not k.startswith('visual.')}
    path = tmp_path / 'text_only.pth'
    torch.save({'state_dict': text_only}, path)
    with pytest.raises(KeyError, match=r"text_only\.pth.*openai_clip.*'visual\.'.*token_embedding"):
        load_visual_state_dict(path)
    with pytest.raises(KeyError, match='no image-tower keys'):
        tiny('FaRL', path).init_weights()


def test_missing_file_says_where_to_put_it(tmp_path):
    missing = tmp_path / 'FaRL-Base-Patch16-LAIONFace20M-ep64.pth'
    with pytest.raises(FileNotFoundError, match=r'not found.*checkpoints/'):
        load_checkpoint_file(missing)
    with pytest.raises(FileNotFoundError, match='checkpoints/'):
        tiny('FaRL', missing).init_weights()


def test_hf_directory_without_weights(tmp_path):
    (tmp_path / 'config.json').write_text('{"model_type": "clip"}')
    (tmp_path / 'tokenizer.json').write_text('{}')
    with pytest.raises(FileNotFoundError,
                       match=r'config\.json found\) without weights.*model\.safetensors'):
        load_checkpoint_file(tmp_path)


class _Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / 'PWNED'
    torch_file = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'visual.conv1.weight': torch.zeros(1)},
                'payload': _Exploit(marker)}, torch_file)
    raw_file = tmp_path / 'evil.pkl'
    with open(raw_file, 'wb') as f:
        pickle.dump({'payload': _Exploit(marker)}, f, protocol=2)
    for path in (torch_file, raw_file):
        with pytest.raises(UnsafeCheckpointError, match='non-tensor objects.*refused for safety') \
                as error:
            load_checkpoint_file(path)
        assert 'system' in str(error.value) and 'weights_only=False' not in str(error.value)
    html = tmp_path / 'download.pth'
    html.write_text('<html>404</html>')
    with pytest.raises(UnsafeCheckpointError, match='refused for safety'):
        load_checkpoint_file(html)
    assert not marker.exists()


# --------------------------------------------------------------------------------- full size
def test_full_farl_vit_b16_at_448_against_open_clip():
    """FaRL ViT-B/16 at 448 has exactly open_clip's ViT-B-16 image tower minus ln_post and proj,
    with 785 instead of 197 position rows, and OpenAI weights load into it as they are."""
    config = open_clip.get_model_config('ViT-B-16')
    reference = open_clip.model._build_vision_tower(config['embed_dim'], config['vision_cfg'],
                                                    quick_gelu=True)
    ours = FaRL(arch='base', img_size=448)
    theirs_sd, ours_sd = reference.state_dict(), ours.state_dict()
    assert set(theirs_sd) - set(ours_sd) == {'ln_post.weight', 'ln_post.bias', 'proj'}
    assert set(ours_sd) <= set(theirs_sd)
    assert ours_sd['positional_embedding'].shape == (785, 768)
    assert theirs_sd['positional_embedding'].shape == (197, 768)
    count = lambda module: sum(param.numel() for param in module.parameters())  # noqa: E731
    not_built = reference.ln_post.weight.numel() * 2 + reference.proj.numel()
    assert count(ours) == count(reference) - not_built + (785 - 197) * 768
    ignored = ours.load_visual_state_dict(theirs_sd)
    assert sorted(ignored) == ['ln_post.bias', 'ln_post.weight', 'proj']
    assert ours.out_indices == (3, 5, 7, 11)
    # A real forward on a small input (the table is resized on the fly), then the shapes at 448
    # on the meta device: a CPU forward at 448 takes several seconds on 2 cores.
    with torch.no_grad():
        small = ours.eval()(torch.randn(1, 3, 64, 64))
        assert [tuple(feature.shape) for feature in small] == [(1, 768, 4, 4)] * 4
        assert all(torch.isfinite(feature).all() for feature in small)
        maps = ours.to('meta')(torch.zeros(1, 3, 448, 448, device='meta'))
    assert [tuple(feature.shape) for feature in maps] == [(1, 768, 28, 28)] * 4
