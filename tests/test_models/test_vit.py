"""FaceViT switches: each one checked against an independent computation."""
import math

import cv2
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faceanalysis.models.backbones import FLIP80M, MCF, FaceViT, FaRL
from faceanalysis.models.layers import (Attention, QuickGELU, Transformer, resize_pos_embed,
                                        sincos_2d_pos_embed)
from faceanalysis.registry import MODELS

TINY = dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64)


def tiny_vit(**kwargs):
    kwargs.setdefault('img_size', 32)
    kwargs.setdefault('patch_size', 8)
    return FaceViT(arch=TINY, **kwargs).eval()


def test_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(32, 4)
    nn.init.normal_(ours.in_proj_bias)
    reference = nn.MultiheadAttention(32, 4, batch_first=True)
    # Same parameter names: the state dict moves across unchanged.
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, 32)
    expected, _ = reference(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected, atol=1e-6, rtol=1e-5)
    causal = torch.ones(7, 7, dtype=torch.bool).triu(1)  # True = masked for nn.MHA
    expected, _ = reference(x, x, x, attn_mask=causal, need_weights=False)
    torch.testing.assert_close(ours(x, is_causal=True), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('act, expected', [
    ('quick_gelu', lambda x: x * torch.sigmoid(1.702 * x)),
    ('gelu', lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))),
    ('gelu_tanh',
     lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))),
])
def test_activation_switch(act, expected):
    block = Transformer(16, 1, 2, 32, act=act).resblocks[0]
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(block.mlp.act(x), expected(x), atol=1e-6, rtol=1e-5)


def test_unknown_activation_and_arch_are_rejected():
    with pytest.raises(ValueError, match='unknown activation'):
        Transformer(16, 1, 2, 32, act='relu6')
    with pytest.raises(ValueError, match='unknown arch'):
        FaceViT(arch='gigantic')
    with pytest.raises(ValueError, match='lacks'):
        FaceViT(arch=dict(embed_dims=32, num_layers=2))
    with pytest.raises(ValueError, match='pos_embed'):
        tiny_vit(pos_embed='rope')


def test_presets_set_the_switches_of_their_checkpoints():
    farl, mcf, flip = (cls(arch=TINY, img_size=32, patch_size=8) for cls in (FaRL, MCF, FLIP80M))
    assert isinstance(farl.transformer.resblocks[0].mlp.act, QuickGELU)
    assert farl.ln_pre is not None and farl.conv1.bias is None
    assert farl.transformer.resblocks[0].ln_1.eps == 1e-5
    assert isinstance(mcf.transformer.resblocks[0].mlp.act, nn.GELU)
    assert mcf.transformer.resblocks[0].mlp.act.approximate == 'none'
    assert mcf.ln_pre is None and mcf.conv1.bias is not None
    assert mcf.transformer.resblocks[0].ln_1.eps == 1e-6
    torch.testing.assert_close(mcf.positional_embedding.data, sincos_2d_pos_embed(32, (4, 4)))
    assert flip.ln_pre is not None and isinstance(flip.transformer.resblocks[0].mlp.act, QuickGELU)
    # A switch stays overridable: FLIP-80M as TencentPretrain trained it.
    tanh = FLIP80M(arch=TINY, img_size=32, patch_size=8, act='gelu_tanh')
    assert tanh.transformer.resblocks[0].mlp.act.approximate == 'tanh'


def test_flip80m_variants_and_default_out_indices():
    b32 = MODELS.build(dict(type='FLIP80M', arch='base', patch_size=32, img_size=224))
    assert b32.conv1.weight.shape == (768, 3, 32, 32) and b32.grid_size == (7, 7)
    assert b32.out_indices == (3, 5, 7, 11)
    l14 = MODELS.build(dict(type='FLIP80M', arch='large', patch_size=14, img_size=224))
    assert l14.conv1.weight.shape == (1024, 3, 14, 14)
    assert l14.positional_embedding.shape == (257, 1024)
    assert l14.out_indices == (7, 11, 15, 23)
    assert tiny_vit().out_indices == (2, )  # dict arch: last block
    assert tiny_vit(out_indices=(-1, 0)).out_indices == (2, 0)


def test_forward_returns_raw_block_outputs_as_maps():
    torch.manual_seed(0)
    vit = tiny_vit(out_indices=(0, 2))
    x = torch.randn(2, 3, 32, 48)  # non-square: grid 4 x 6
    maps = vit(x)
    assert [m.shape for m in maps] == [(2, 32, 4, 6), (2, 32, 4, 6)]
    # Recompute block by block by hand; token n = row * 6 + col.
    tokens = vit.conv1(x).flatten(2).transpose(1, 2)
    cls = vit.class_embedding.expand(2, 1, -1)
    pos = resize_pos_embed(vit.positional_embedding, (4, 4), (4, 6))
    hidden = vit.ln_pre(torch.cat([cls, tokens], 1) + pos)
    outputs = []
    for block in vit.transformer.resblocks:
        hidden = block(hidden)
        outputs.append(hidden)
    torch.testing.assert_close(maps[0][1, :, 2, 5], outputs[0][1, 1 + 2 * 6 + 5])
    torch.testing.assert_close(maps[1][0, :, 3, 0], outputs[2][0, 1 + 3 * 6])


def test_input_size_must_be_a_multiple_of_the_patch():
    with pytest.raises(ValueError, match='multiple of the patch size'):
        tiny_vit()(torch.randn(1, 3, 30, 32))


def test_resize_keeps_cls_row_and_follows_bicubic_rule():
    table = torch.randn(1 + 4 * 4, 8)
    assert resize_pos_embed(table, (4, 4), (4, 4)) is table
    resized = resize_pos_embed(table, (4, 4), (8, 6))
    assert resized.shape == (1 + 8 * 6, 8)
    torch.testing.assert_close(resized[0], table[0])
    # A constant grid stays constant under bicubic (weights sum to one).
    constant = torch.cat([torch.zeros(1, 3), torch.ones(16, 3) * 2.5])
    torch.testing.assert_close(resize_pos_embed(constant, (4, 4), (7, 9))[1:],
                               torch.full((63, 3), 2.5))
    # FaRL's rule (bicubic, a=-0.75, half-pixel centres, clamped border) is OpenCV's INTER_CUBIC
    # for upsampling: an independent implementation of the same convention.
    grid = torch.randn(4, 4, 3)
    out = resize_pos_embed(torch.cat([torch.zeros(1, 3), grid.reshape(16, 3)]), (4, 4), (8, 6))
    expected = cv2.resize(grid.numpy(), (6, 8), interpolation=cv2.INTER_CUBIC)
    torch.testing.assert_close(out[1:].reshape(8, 6, 3), torch.from_numpy(expected),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='rows'):
        resize_pos_embed(table, (3, 3), (4, 4))


def test_sincos_table_matches_definition():
    dims, grid = 16, (3, 5)
    table = sincos_2d_pos_embed(dims, grid)
    assert table.shape == (1 + 15, dims) and torch.all(table[0] == 0)
    quarter = dims // 4
    for row in range(grid[0]):
        for col in range(grid[1]):
            expected = []
            for position in (col, row):  # first half x, second half y (MAE convention)
                angles = [position / 10000**(k / quarter) for k in range(quarter)]
                expected += [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
            torch.testing.assert_close(table[1 + row * grid[1] + col],
                                       torch.tensor(expected), atol=1e-6, rtol=1e-6)


def test_on_the_fly_resize_equals_building_at_that_size():
    torch.manual_seed(0)
    small = tiny_vit(img_size=32)
    large = tiny_vit(img_size=64)
    large.load_visual_state_dict(small.state_dict())  # resized once, at load
    x = torch.randn(1, 3, 64, 64)
    for ours, theirs in zip(small(x), large(x)):
        torch.testing.assert_close(ours, theirs)


def test_frozen_pos_embed_switch():
    assert not tiny_vit(pos_embed='sincos', freeze_pos_embed=True).positional_embedding.requires_grad
    assert tiny_vit(pos_embed='sincos').positional_embedding.requires_grad


def test_gradient_checkpointing_gives_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = tiny_vit().train()
    ckpt = tiny_vit(grad_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    out_plain, out_ckpt = plain(x)[0], ckpt(x)[0]
    torch.testing.assert_close(out_plain, out_ckpt)
    out_plain.square().sum().backward()
    out_ckpt.square().sum().backward()
    for (name, p1), p2 in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


def test_drop_path_is_stochastic_in_training_only():
    vit = tiny_vit(drop_path_rate=0.5)
    rates = [b.drop_path.drop_prob for b in vit.transformer.resblocks[1:]]
    assert rates == pytest.approx([0.25, 0.5])
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(vit(x)[0], vit(x)[0])
    vit.train()
    torch.manual_seed(1)
    first = vit(x)[0]
    torch.manual_seed(2)
    assert not torch.allclose(first, vit(x)[0])


def test_drop_tokens_keeps_cls_and_exact_count_in_order():
    tokens = torch.arange(2 * 17, dtype=torch.float).reshape(2, 17, 1).expand(2, 17, 4)
    kept = FaceViT.drop_tokens(tokens, 0.5, generator=torch.Generator().manual_seed(0))
    assert kept.shape == (2, 1 + 8, 4)
    assert torch.equal(kept[:, 0], tokens[:, 0])
    ids = kept[..., 0] - torch.tensor([[0.], [17.]])
    assert torch.all(ids[:, 1:].diff(dim=1) > 0) and torch.all(ids[:, 1:] >= 1)
    assert FaceViT.drop_tokens(tokens, 0.) is tokens
    assert FaceViT.drop_tokens(tokens, 0.75).shape[1] == 1 + 4
    with pytest.raises(ValueError):
        FaceViT.drop_tokens(tokens, 1.0)


def test_mask_token_replaces_masked_patches():
    torch.manual_seed(0)
    vit = tiny_vit(mask_token=True)
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [0, 5]] = True
    tokens, _ = vit.prepare_tokens(x, mask=mask)
    plain, _ = vit.prepare_tokens(x)
    # ln_pre is per token: masked rows change, the others do not.
    assert torch.equal(tokens[0, 2], plain[0, 2]) and not torch.allclose(tokens[0, 1], plain[0, 1])
    expected = vit.ln_pre(vit.mask_token + vit.positional_embedding[1 + 5])
    torch.testing.assert_close(tokens[0, 1 + 5], expected)
    with pytest.raises(RuntimeError, match='mask_token=True'):
        tiny_vit().prepare_tokens(x, mask=mask)


def test_forward_pooled_cls_and_avg_all():
    torch.manual_seed(0)
    vit = tiny_vit(final_norm=True, output_dim=8)
    x = torch.randn(2, 3, 32, 32)
    tokens, _ = vit.prepare_tokens(x)
    hidden, _ = vit.transformer(tokens)
    torch.testing.assert_close(vit.forward_pooled(x), vit.ln_post(hidden[:, 0]) @ vit.proj)
    vit.pool = 'avg_all'
    torch.testing.assert_close(vit.forward_pooled(x), vit.ln_post(hidden).mean(1) @ vit.proj)
    assert vit.forward_pooled(x, token_drop_ratio=0.5).shape == (2, 8)


def test_load_visual_state_dict_is_strict_and_names_keys():
    source = tiny_vit()
    target = tiny_vit()
    state = dict(source.state_dict(), **{'ln_post.weight': torch.ones(32), 'proj': torch.ones(32, 8)})
    ignored = target.load_visual_state_dict(state)
    assert sorted(ignored) == ['ln_post.weight', 'proj']
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight)
    broken = dict(source.state_dict())
    broken.pop('transformer.resblocks.1.ln_2.bias')
    with pytest.raises(KeyError, match=r'resblocks\.1\.ln_2\.bias'):
        target.load_visual_state_dict(broken)
    with pytest.raises(KeyError, match='patch_bias'):
        target.load_visual_state_dict(dict(source.state_dict(), **{'conv1.bias': torch.ones(32)}))
    with pytest.raises(ValueError, match='patch embedding'):
        tiny_vit(patch_size=16).load_visual_state_dict(source.state_dict())


def test_sdpa_matches_explicit_softmax_attention():
    torch.manual_seed(0)
    attn = Attention(16, 2).eval()
    x = torch.randn(3, 5, 16)
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def heads(t):
        return t.reshape(3, 5, 2, 8).transpose(1, 2)

    weights = (heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(8)).softmax(-1)
    out = (weights @ heads(v)).transpose(1, 2).reshape(3, 5, 16)
    torch.testing.assert_close(attn(x), attn.out_proj(out), atol=1e-6, rtol=1e-5)
