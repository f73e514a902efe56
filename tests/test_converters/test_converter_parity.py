"""Released layouts -> FaceViT: forward parity with the reference implementations.

Each test builds a tiny random reference model (open_clip for FaRL, timm for MCF, transformers
for FLIP-80M), saves it the way the project released it, loads the file through the backbone's
``init_cfg`` and compares our tapped block outputs with the reference's block outputs (fp32,
atol 1e-5), at the native input size and at twice the size. At twice the size the reference is
built for the larger grid and given the same weights with the position table resized by the
documented rule (CLS row kept, bicubic ``align_corners=False``), so both sides use one table.
"""
import argparse
import importlib.util
import os.path as osp
import shutil
from functools import partial

import open_clip
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

import faceanalysis  # noqa: F401  (compat shims + unpickling allowlist)
from faceanalysis.converters import (detect_layout, load_checkpoint_file, load_clip_checkpoint,
                                     load_visual_state_dict)
from faceanalysis.models.layers import resize_pos_embed
from faceanalysis.registry import MODELS

transformers = pytest.importorskip('transformers')

WIDTH, DEPTH, HEADS, MLP, PATCH, SIZE = 64, 3, 4, 256, 8, 32
GRID = SIZE // PATCH
ATOL = 1e-5
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# --------------------------------------------------------------------------------- helpers
def perturb_(module: nn.Module, seed: int) -> nn.Module:
    """Move every parameter off its initial value (LayerNorm 1/0, zero biases).

    With default inits a swapped ln_1/ln_2 or a dropped bias would go unnoticed.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            scale = 0.1 if param.ndim <= 1 else 0.02
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return module.eval()


def build_ours(preset: str, checkpoint: str, img_size: int = SIZE) -> nn.Module:
    model = MODELS.build(dict(
        type=preset, arch=dict(embed_dims=WIDTH, num_layers=DEPTH, num_heads=HEADS,
                               feedforward_channels=MLP),
        img_size=img_size, patch_size=PATCH, out_indices=(0, 1, 2),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
    model.init_weights()
    return model.eval()


def our_taps(preset: str, checkpoint: str, x: torch.Tensor, img_size: int = SIZE):
    with torch.no_grad():
        return build_ours(preset, checkpoint, img_size)(x)


def tokens_to_maps(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 1 + N, D) block output -> (B, D, h, w) with the CLS token dropped."""
    batch, _, dims = tokens.shape
    return tokens[:, 1:].transpose(1, 2).reshape(batch, dims, grid, grid)


def hook_taps(blocks, batch_first: bool = True):
    """Record each block's output (as (B, L, D)); returns (taps list, hook handles)."""
    taps = []

    def hook(_module, _inputs, output):
        output = output[0] if isinstance(output, tuple) else output
        taps.append(output if batch_first else output.transpose(0, 1))

    return taps, [block.register_forward_hook(hook) for block in blocks]


def assert_taps_match(ours, reference_taps, grid):
    assert len(ours) == len(reference_taps) == DEPTH
    for index, (mine, theirs) in enumerate(zip(ours, reference_taps)):
        assert mine.shape == (theirs.shape[0], WIDTH, grid, grid)
        torch.testing.assert_close(mine, tokens_to_maps(theirs, grid), atol=ATOL, rtol=0,
                                   msg=lambda m: f'block {index}: {m}')


def resized(table: torch.Tensor, scale: int = 2) -> torch.Tensor:
    return resize_pos_embed(table, (GRID, GRID), (GRID * scale, GRID * scale))


def images(size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------- FaRL
def open_clip_model(img_size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    vision = open_clip.model.CLIPVisionCfg(layers=DEPTH, width=WIDTH, head_width=WIDTH // HEADS,
                                           mlp_ratio=MLP / WIDTH, patch_size=PATCH,
                                           image_size=img_size)
    text = open_clip.model.CLIPTextCfg(context_length=16, vocab_size=100, width=32, heads=2,
                                       layers=2)
    model = open_clip.model.CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text, quick_gelu=True)
    return perturb_(model, seed)


def open_clip_taps(model, x):
    transformer = model.visual.transformer
    taps, handles = hook_taps(transformer.resblocks, getattr(transformer, 'batch_first', False))
    with torch.no_grad():
        model.visual(x)
    for handle in handles:
        handle.remove()
    return taps


@pytest.fixture(scope='module')
def farl_checkpoint(tmp_path_factory):
    model = open_clip_model(SIZE)
    state_dict = dict(model.state_dict())
    # FaRL's masked-image-modelling head (pretrain.md §2.5): present in the file, not a backbone.
    state_dict.update({
        'visual.mask_token': torch.randn(WIDTH),
        'visual.lm_transformer.resblocks.0.ln_1.weight': torch.randn(WIDTH),
        'visual.ln_lm.weight': torch.randn(WIDTH),
        'visual.ln_lm.bias': torch.randn(WIDTH),
        'visual.lm_head.weight': torch.randn(50, WIDTH),
        'visual.lm_head.bias': torch.randn(50),
    })
    path = str(tmp_path_factory.mktemp('farl') / 'FaRL-tiny.pth')
    torch.save({'state_dict': state_dict}, path)
    return path, model


def test_farl_parity_native_and_double_size(farl_checkpoint):
    path, reference = farl_checkpoint
    assert detect_layout(load_checkpoint_file(path)) == 'openai_clip'
    x = images(SIZE)
    assert_taps_match(our_taps('FaRL', path, x), open_clip_taps(reference, x), GRID)

    # 2x: reference built at 64 px with the resized table; ours resizes the 32 px table itself.
    big = open_clip_model(2 * SIZE, seed=1)
    state_dict = reference.state_dict()
    state_dict['visual.positional_embedding'] = resized(state_dict['visual.positional_embedding'])
    big.load_state_dict(state_dict)
    x = images(2 * SIZE, seed=1)
    assert_taps_match(our_taps('FaRL', path, x, 2 * SIZE), open_clip_taps(big.eval(), x),
                      2 * GRID)


def test_farl_keeps_mim_keys_and_infers_hints(farl_checkpoint):
    path, reference = farl_checkpoint
    state_dict, layout, hints = load_clip_checkpoint(path)
    assert layout == 'openai_clip'
    for key, value in reference.state_dict().items():
        assert torch.equal(state_dict[key], value), key
    assert {'visual.mask_token', 'visual.lm_head.weight', 'visual.ln_lm.weight'} <= set(state_dict)
    vision, text = hints['vision'], hints['text']
    assert hints['preset'] == 'FaRL' and not hints['from_config']
    assert (vision['embed_dims'], vision['num_layers'], vision['patch_size'],
            vision['img_size'], vision['feedforward_channels']) == (WIDTH, DEPTH, PATCH, SIZE, MLP)
    assert vision['num_heads'] == WIDTH // 64 and vision['num_heads_inferred']
    assert (vision['act'], vision['ln_pre'], vision['patch_bias'], vision['mask_token']) == (
        'quick_gelu', True, False, True)
    assert (text['embed_dims'], text['num_layers'], text['vocab_size'],
            text['context_length']) == (32, 2, 100, 16)
    visual, _ = load_visual_state_dict(path)
    assert 'conv1.weight' in visual and 'lm_head.weight' in visual
    assert not any(key.startswith('visual.') or key.startswith('token_') for key in visual)


# --------------------------------------------------------------------------------- MCF
def timm_vit(img_size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=img_size, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH,
                              num_heads=HEADS, mlp_ratio=MLP / WIDTH, qkv_bias=True,
                              norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU,
                              class_token=True, num_classes=0)
    return perturb_(model, seed)


def timm_taps(model, x):
    taps, handles = hook_taps(model.blocks)
    with torch.no_grad():
        model.forward_features(x)
    for handle in handles:
        handle.remove()
    return taps


def mcf_training_checkpoint(online: nn.Module, target: nn.Module) -> dict:
    """What MCF's ``save_model`` writes (pretrain.md §3.5), with tiny stand-in heads."""
    model = {f'online_encoder.{k}': v for k, v in online.state_dict().items()}
    model.update({f'target_encoder.{k}': v for k, v in target.state_dict().items()})
    model.update({
        'online_encoder.fc.0.weight': torch.randn(32, WIDTH),
        'online_encoder.fc.1.weight': torch.randn(32),
        'target_encoder.fc.0.weight': torch.randn(32, WIDTH),
        'predictor.0.weight': torch.randn(32, 32),
        'mask_token': torch.randn(1, 1, 32),          # the decoder's, not the encoder's
        'decoder_embed.weight': torch.randn(32, WIDTH),
        'decoder_pos_embed': torch.randn(1, 1 + GRID * GRID, 32),
        'decoder_blocks.0.norm1.weight': torch.randn(32),
        'decoder_norm.weight': torch.randn(32),
        'decoder_pred.weight': torch.randn(3 * PATCH * PATCH, 32),
        'perceptual_loss.model.patch_embed.proj.weight': torch.randn(WIDTH, 3, PATCH, PATCH),
        'perceptual_loss.model.head.weight': torch.randn(10, WIDTH),
    })
    optimizer = torch.optim.AdamW(online.parameters(), lr=2.4e-3, betas=(0.9, 0.95))
    args = argparse.Namespace(model='mae_vit_base_patch16', mask_ratio=0.75, blr=1.5e-4,
                              batch_size=64, accum_iter=8, input_size=224, norm_pix_loss=False)
    return {'model': model, 'optimizer': optimizer.state_dict(), 'epoch': 3,
            'scaler': {'scale': 65536.0, 'growth_factor': 2.0}, 'args': args}


@pytest.fixture(scope='module')
def mcf_checkpoints(tmp_path_factory):
    online, target = timm_vit(SIZE, seed=0), timm_vit(SIZE, seed=5)
    folder = tmp_path_factory.mktemp('mcf')
    training = str(folder / 'mcf-tiny.pth')
    torch.save(mcf_training_checkpoint(online, target), training)
    ddp = str(folder / 'mcf-ddp.pth')
    torch.save({f'module.{k}': v for k, v in online.state_dict().items()}, ddp)
    return training, ddp, online


def test_mcf_checkpoint_loads_safely_with_namespace(mcf_checkpoints):
    training, _, _ = mcf_checkpoints
    checkpoint = load_checkpoint_file(training)  # weights_only=True + the compat allowlist
    assert isinstance(checkpoint['args'], argparse.Namespace) and checkpoint['epoch'] == 3
    assert detect_layout(checkpoint) == 'mae_timm'


@pytest.mark.parametrize('which', ['training', 'ddp'])
def test_mcf_parity_native_and_double_size(mcf_checkpoints, which):
    training, ddp, reference = mcf_checkpoints
    path = training if which == 'training' else ddp
    x = images(SIZE)
    # The target encoder has other weights: matching proves the online encoder was taken.
    assert_taps_match(our_taps('MCF', path, x), timm_taps(reference, x), GRID)

    big = timm_vit(2 * SIZE, seed=1)
    state_dict = reference.state_dict()
    state_dict['pos_embed'] = resized(state_dict['pos_embed'][0])[None]
    big.load_state_dict(state_dict)
    x = images(2 * SIZE, seed=1)
    assert_taps_match(our_taps('MCF', path, x, 2 * SIZE), timm_taps(big.eval(), x), 2 * GRID)


def test_mcf_conversion_and_hints(mcf_checkpoints):
    training, _, reference = mcf_checkpoints
    state_dict, layout, hints = load_clip_checkpoint(training)
    assert layout == 'mae_timm' and hints['submodel_prefix'] == 'online_encoder.'
    assert all(key.startswith('visual.') for key in state_dict)
    reference_sd = reference.state_dict()
    assert torch.equal(state_dict['visual.class_embedding'], reference_sd['cls_token'].view(-1))
    assert torch.equal(state_dict['visual.positional_embedding'], reference_sd['pos_embed'][0])
    assert torch.equal(state_dict['visual.ln_post.weight'], reference_sd['norm.weight'])
    assert torch.equal(state_dict['visual.transformer.resblocks.1.attn.in_proj_weight'],
                       reference_sd['blocks.1.attn.qkv.weight'])
    vision = hints['vision']
    assert hints['preset'] == 'MCF' and 'text' not in hints
    assert (vision['act'], vision['ln_eps'], vision['patch_bias'], vision['ln_pre']) == (
        'gelu', 1e-6, True, False)


# --------------------------------------------------------------------------------- FLIP-80M
def hf_clip(img_size: int, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
                         hidden_act='quick_gelu', bos_token_id=0, eos_token_id=2,
                         pad_token_id=1),
        vision_config=dict(hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=DEPTH,
                           num_attention_heads=HEADS, image_size=img_size, patch_size=PATCH,
                           hidden_act='quick_gelu'),
        projection_dim=32)
    return perturb_(transformers.CLIPModel(config), seed)


def hf_taps(model, x):
    with torch.no_grad():
        out = model.vision_model(pixel_values=x, output_hidden_states=True)
        embeddings = model.vision_model.pre_layrnorm(model.vision_model.embeddings(x))
    hidden = out.hidden_states
    # hidden_states[0] is the input of block 0, i.e. the embeddings AFTER pre_layrnorm, so block
    # i's output is hidden_states[i + 1]; the last one is before post_layernorm.
    assert len(hidden) == DEPTH + 1
    torch.testing.assert_close(hidden[0], embeddings, atol=0, rtol=0)
    torch.testing.assert_close(hidden[-1], out.last_hidden_state, atol=0, rtol=0)
    return list(hidden[1:])


@pytest.fixture(scope='module')
def flip_checkpoints(tmp_path_factory):
    model = hf_clip(SIZE)
    root = tmp_path_factory.mktemp('flip')
    safetensors_dir = root / 'FLIP-tiny'
    model.save_pretrained(str(safetensors_dir))
    # transformers 5 always writes safetensors; the release also has pytorch_model.bin, an
    # OrderedDict pickle with the int64 position_ids buffers (pretrain.md §5.5).
    bin_dir = root / 'FLIP-tiny-bin'
    bin_dir.mkdir()
    shutil.copy(safetensors_dir / 'config.json', bin_dir / 'config.json')
    state_dict = dict(model.state_dict())
    state_dict['text_model.embeddings.position_ids'] = torch.arange(16)[None]
    state_dict['vision_model.embeddings.position_ids'] = torch.arange(1 + GRID * GRID)[None]
    torch.save(state_dict, bin_dir / 'pytorch_model.bin')
    return dict(dir=str(safetensors_dir), bin_dir=str(bin_dir),
                safetensors=str(safetensors_dir / 'model.safetensors'),
                bin=str(bin_dir / 'pytorch_model.bin')), model


@pytest.mark.parametrize('source', ['dir', 'bin_dir', 'safetensors', 'bin'])
def test_flip80m_parity_native_and_double_size(flip_checkpoints, source):
    paths, reference = flip_checkpoints
    x = images(SIZE)
    assert_taps_match(our_taps('FLIP80M', paths[source], x), hf_taps(reference, x), GRID)

    big = hf_clip(2 * SIZE, seed=1)
    state_dict = reference.state_dict()
    key = 'vision_model.embeddings.position_embedding.weight'
    state_dict[key] = resized(state_dict[key])
    big.load_state_dict(state_dict)
    x = images(2 * SIZE, seed=1)
    assert_taps_match(our_taps('FLIP80M', paths[source], x, 2 * SIZE), hf_taps(big.eval(), x),
                      2 * GRID)


def test_flip80m_full_conversion_matches_hf_embeddings(flip_checkpoints):
    """Both towers, projections and logit scale: load the converted dict into open_clip's CLIP
    (OpenAI names) and compare its image/text embeddings with Hugging Face's."""
    paths, reference = flip_checkpoints
    state_dict, layout, hints = load_clip_checkpoint(paths['dir'])
    assert layout == 'hf_clip' and not any('position_ids' in key for key in state_dict)
    target = open_clip_model(SIZE)
    target.load_state_dict(state_dict, strict=True)
    target.eval()
    x = images(SIZE)
    ids = torch.randint(3, 99, (2, 16), generator=torch.Generator().manual_seed(0))
    ids[:, 9] = 99  # the EOT (largest id) pools the text, in both implementations
    with torch.no_grad():
        ours_image, ours_text = target.encode_image(x), target.encode_text(ids)
        hf_image = reference.visual_projection(reference.vision_model(pixel_values=x).pooler_output)
        hf_text = reference.text_projection(reference.text_model(input_ids=ids).pooler_output)
    torch.testing.assert_close(ours_image, hf_image, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours_text, hf_text, atol=ATOL, rtol=0)
    assert torch.equal(state_dict['logit_scale'], reference.logit_scale.detach())
    assert hints['from_config'] and hints['preset'] == 'FLIP80M'
    assert (hints['vision']['num_heads'], hints['vision']['act'], hints['vision']['ln_eps'],
            hints['vision']['img_size'], hints['vision']['patch_size']) == (
                HEADS, 'quick_gelu', 1e-5, SIZE, PATCH)
    assert (hints['text']['num_heads'], hints['text']['context_length']) == (2, 16)


# --------------------------------------------------------------------------------- tool
def _convert_tool():
    spec = importlib.util.spec_from_file_location(
        'convert_weights_tool', osp.join(REPO, 'tools', 'convert_weights.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_weights_round_trip(flip_checkpoints, tmp_path, capsys):
    paths, _ = flip_checkpoints
    tool = _convert_tool()
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--help'])
    assert exit_info.value.code == 0 and '--visual-only' in capsys.readouterr().out

    full, visual_only = str(tmp_path / 'flip.pth'), str(tmp_path / 'flip_visual.pth')
    assert tool.main([paths['dir'], full]) == 0
    assert 'hf_clip' in capsys.readouterr().out
    assert tool.main([paths['dir'], visual_only, '--visual-only']) == 0
    assert tool.main([paths['dir'], full]) == 1  # exists, no --overwrite

    saved = torch.load(full, map_location='cpu', weights_only=True)
    assert saved['meta']['source'] == paths['dir'] and saved['meta']['source_layout'] == 'hf_clip'
    assert saved['meta']['hints']['vision']['act'] == 'quick_gelu'
    assert 'token_embedding.weight' in saved['state_dict']
    saved_visual = torch.load(visual_only, map_location='cpu', weights_only=True)
    assert all(key.startswith('visual.') for key in saved_visual['state_dict'])

    state_dict, layout, hints = load_clip_checkpoint(full)
    assert layout == 'openai_clip' and hints['converted_from'] == 'hf_clip'
    assert hints['vision']['num_heads'] == HEADS and not hints['vision']['num_heads_inferred']
    x = images(SIZE)
    expected = our_taps('FLIP80M', paths['dir'], x)
    for path in (full, visual_only):
        for mine, theirs in zip(our_taps('FLIP80M', path, x), expected):
            assert torch.equal(mine, theirs)
