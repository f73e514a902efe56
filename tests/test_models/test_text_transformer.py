"""TextTransformer: OpenAI parameter names, causal mask, pooling variants."""
import pytest
import torch

from faceanalysis.models.backbones import TextTransformer
from faceanalysis.registry import MODELS


def tiny_text(**kwargs):
    torch.manual_seed(0)
    kwargs = dict(dict(vocab_size=50, context_length=8, width=32, layers=2, heads=4,
                       embed_dim=16), **kwargs)
    return TextTransformer(**kwargs).eval()


def test_parameter_names_are_openai_text_tower():
    names = set(tiny_text().state_dict())
    assert {'token_embedding.weight', 'positional_embedding', 'ln_final.weight',
            'ln_final.bias', 'text_projection',
            'transformer.resblocks.1.attn.in_proj_weight',
            'transformer.resblocks.1.mlp.c_proj.weight'} <= names
    assert all(name.split('.')[0] in ('token_embedding', 'positional_embedding', 'transformer',
                                      'ln_final', 'text_projection') for name in names)
    assert 'text_projection' not in tiny_text(embed_dim=None).state_dict()


@pytest.mark.parametrize('causal', [True, False])
def test_causal_mask(causal):
    model = tiny_text(causal=causal)
    ids = torch.tensor([[1, 5, 7, 9, 3, 0, 0, 0]])
    changed = ids.clone()
    changed[0, 4] = 11
    with torch.no_grad():
        before, after = model.encode_text_tokens(ids), model.encode_text_tokens(changed)
    # Positions before the change see it only without the causal mask.
    assert torch.allclose(before[:, :4], after[:, :4]) is causal
    assert not torch.allclose(before[:, 4:], after[:, 4:])


@pytest.mark.parametrize('pool, index', [('eot_argmax', [3, 5]), ('eos', [2, 1]),
                                         ('first', [0, 0]), ('last', [7, 7]),
                                         ('last_valid', [4, 5])])
def test_pooling(pool, index):
    model = tiny_text(pool=pool, eos_id=9, pad_id=0)
    ids = torch.tensor([[1, 4, 9, 30, 2, 0, 0, 0],
                        [1, 9, 3, 5, 6, 40, 0, 0]])
    with torch.no_grad():
        tokens = model.encode_text_tokens(ids)
        expected = tokens[torch.arange(2), torch.tensor(index)] @ model.text_projection
        torch.testing.assert_close(model(ids), expected)


def test_short_inputs_and_errors():
    model = MODELS.build(dict(type='TextTransformer', vocab_size=50, context_length=8, width=32,
                              layers=1, heads=2, embed_dim=16))
    assert model(torch.tensor([[1, 2, 3]]), normalize=True).norm(dim=-1).item() == \
        pytest.approx(1.)
    with pytest.raises(ValueError, match='context length'):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match='pool'):
        TextTransformer(pool='mean')
    with pytest.raises(ValueError, match='vocabulary'):
        model.tokenize(['a face'])
