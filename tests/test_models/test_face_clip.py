"""FaceCLIP: OpenAI state-dict layout, parity with open_clip and HF CLIP, zero-shot API."""
import math

import numpy as np
import pytest
import torch

from faceanalysis.models import FaceCLIP
from faceanalysis.models.face_clip import clip_preprocess, infer_clip_config

PROMPTS = ['a photo of a smiling face', 'a photo of a sad face',
           'a close-up portrait of an old man with a grey beard, smiling at the camera!']
TINY_VISION = dict(arch=dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=256),
                   img_size=32, patch_size=8)
TINY_TEXT = dict(width=64, layers=2, heads=4)
TEXT_KEYS = ('token_embedding.weight', 'positional_embedding', 'ln_final.weight',
             'ln_final.bias', 'text_projection')


def _perturb(module, seed=0):
    """Random values everywhere (reference inits leave biases at 0 and LayerNorms at 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name != 'logit_scale':
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return module


def tiny_clip(**kwargs):
    return FaceCLIP(embed_dim=32, vision_cfg=TINY_VISION, text_cfg=TINY_TEXT, **kwargs).eval()


def test_state_dict_is_openai_clip_layout():
    model = tiny_clip()
    keys = set(model.state_dict())
    assert set(TEXT_KEYS) | {'logit_scale'} <= keys
    assert {'visual.conv1.weight', 'visual.ln_post.weight', 'visual.proj'} <= keys
    assert 'transformer.resblocks.1.attn.in_proj_weight' in keys
    assert all(key.startswith(('visual.', 'transformer.resblocks.')) or key in TEXT_KEYS
               or key == 'logit_scale' for key in keys)
    # No renaming anywhere: what optimizers see is what checkpoints hold.
    assert keys == {name for name, _ in model.named_parameters()}
    assert model.logit_scale.shape == () and model.text_projection.shape == (64, 32)


# ---------------------------------------------------------------------- open_clip parity
@pytest.fixture(scope='module')
def open_clip_pair():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    torch.manual_seed(0)
    reference = CLIP(embed_dim=32,
                     vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=16, patch_size=8,
                                              image_size=32),
                     text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=4,
                                          layers=2),
                     quick_gelu=True)
    reference = _perturb(reference).eval()
    # 64-wide towers with 4 heads: not OpenAI's width // 64 rule, so say it.
    ours = FaceCLIP.from_state_dict(reference.state_dict(), vision_heads=4, text_heads=4)
    return reference, ours


def test_open_clip_parity(open_clip_pair):
    reference, ours = open_clip_pair
    tokens = ours.tokenize(PROMPTS)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_text(tokens), reference.encode_text(tokens),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode_image(images), reference.encode_image(images),
                                   atol=1e-5, rtol=1e-5)
        expected_logits, _ = reference.get_logits(images, tokens)
        logits, logits_per_text = ours.get_logits(images, tokens)
    torch.testing.assert_close(logits, expected_logits, atol=1e-4, rtol=1e-5)
    assert torch.equal(logits_per_text, logits.t())
    assert torch.equal(ours.logit_scale, reference.logit_scale)
    assert ours.visual.transformer.resblocks[0].attn.num_heads == 4
    assert ours.transformer.resblocks[0].attn.num_heads == 4


def test_logit_scale_is_clamped_at_ln_100():
    model = tiny_clip()
    with torch.no_grad():
        model.logit_scale.fill_(10.)
    _, _, scale = model(torch.randn(1, 3, 32, 32), model.tokenize(['a face']))
    assert scale.item() == pytest.approx(100.)
    assert model.logit_scale.item() == 10.  # clamped when used, the parameter is untouched
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    assert model.logit_scale_exp().item() == pytest.approx(1 / 0.07)


# ---------------------------------------------------------------------- Hugging Face parity
@pytest.mark.parametrize('eos_token_id', [49407, 2])  # first-EOS pooling / legacy argmax pooling
def test_hf_clip_parity_through_converter(tmp_path, eos_token_id):
    from transformers import CLIPConfig, CLIPModel
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                         hidden_act='quick_gelu', bos_token_id=49406, eos_token_id=eos_token_id,
                         pad_token_id=0),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8,
                           hidden_act='quick_gelu'),
        projection_dim=32)
    torch.manual_seed(0)
    reference = _perturb(CLIPModel(config)).eval()
    reference.save_pretrained(tmp_path)

    # The HF -> OpenAI mapping and the head counts (from config.json) come from the converter.
    ours = FaceCLIP.from_pretrained(tmp_path)
    assert ours.checkpoint_info['layout'] == 'hf_clip'
    assert ours.visual.transformer.resblocks[0].attn.num_heads == 2
    assert ours.transformer.resblocks[0].attn.num_heads == 4
    tokens = ours.tokenize(PROMPTS)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        text = reference.get_text_features(input_ids=tokens)
        image = reference.get_image_features(pixel_values=images)
        # transformers 5 returns a ModelOutput whose pooler_output holds the projected features.
        text = getattr(text, 'pooler_output', text)
        image = getattr(image, 'pooler_output', image)
        torch.testing.assert_close(ours.encode_text(tokens), text, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode_image(images), image, atol=1e-5, rtol=1e-5)
    assert torch.equal(ours.logit_scale, reference.logit_scale)


# ---------------------------------------------------------------------- tokenizer and zero-shot
def test_tokenize_shape_and_eot_position():
    model = tiny_clip()
    tokens = model.tokenize(['a face', 'word ' * 200])
    assert tokens.dtype == torch.long and tokens.shape == (2, 77)
    assert tokens[:, 0].tolist() == [49406, 49406]
    assert tokens[0, :4].tolist() == [49406, 320, 1710, 49407] and not tokens[0, 4:].any()
    # The EOT is the largest id, so argmax pooling finds it; a long text keeps it last.
    assert tokens.argmax(dim=-1).tolist() == [3, 76] and tokens[1, -1].item() == 49407


def test_preprocess_matches_open_clip_eval_transform():
    from open_clip.transform import image_transform
    from PIL import Image
    array = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    expected = image_transform(32, is_train=False)(Image.fromarray(array))
    torch.testing.assert_close(clip_preprocess(array, 32)[0], expected, atol=1e-5, rtol=0)


def test_zero_shot_inputs(tmp_path):
    from PIL import Image
    model = _perturb(tiny_clip())
    array = np.random.default_rng(1).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    path = tmp_path / 'face.png'
    Image.fromarray(array).save(path)
    prompts = PROMPTS[:2]

    from_path = model.zero_shot(str(path), prompts)
    from_array = model.zero_shot(array, prompts)
    from_tensor = model.zero_shot(clip_preprocess(array, 32)[0], prompts)
    batch = model.zero_shot([path, array, array[:, ::-1].copy()], prompts)
    for probs in (from_path, from_array, from_tensor):
        assert probs.shape == (1, 2)
    assert batch.shape == (3, 2)
    torch.testing.assert_close(batch.sum(dim=-1), torch.ones(3))
    torch.testing.assert_close(from_path, from_array)
    torch.testing.assert_close(from_tensor, from_array)
    torch.testing.assert_close(batch[:1], from_array)
    assert not model.training


# ---------------------------------------------------------------------- from_pretrained
def _farl_like(seed=0):
    """A tiny FaRL-style CLIP (128-wide towers: width // 64 = 2 heads) plus FaRL's MIM keys."""
    torch.manual_seed(seed)
    model = FaceCLIP(
        embed_dim=16,
        vision_cfg=dict(arch=dict(embed_dims=128, num_layers=3, num_heads=2,
                                  feedforward_channels=192), img_size=48, patch_size=16),
        text_cfg=dict(width=128, layers=2, heads=2, feedforward_channels=256))
    _perturb(model)
    state_dict = model.state_dict()
    state_dict['visual.mask_token'] = torch.zeros(128)
    state_dict['visual.lm_transformer.resblocks.0.ln_1.weight'] = torch.ones(128)
    state_dict['visual.ln_lm.weight'] = torch.ones(128)
    state_dict['visual.lm_head.weight'] = torch.zeros(8, 128)
    return model.eval(), state_dict


def test_from_pretrained_infers_farl_architecture(tmp_path):
    model, state_dict = _farl_like()
    path = tmp_path / 'FaRL-tiny.pth'
    torch.save({'state_dict': state_dict}, path)

    loaded = FaceCLIP.from_pretrained(path)
    assert loaded.checkpoint_info['layout'] == 'openai_clip'
    assert sorted(loaded.ignored_checkpoint_keys) == [
        'visual.lm_head.weight', 'visual.lm_transformer.resblocks.0.ln_1.weight',
        'visual.ln_lm.weight', 'visual.mask_token']
    visual = loaded.visual
    assert (visual.embed_dims, visual.num_layers, visual.patch_size, visual.img_size) == \
        (128, 3, 16, (48, 48))
    assert visual.transformer.resblocks[0].attn.num_heads == 2
    assert visual.transformer.resblocks[0].mlp.c_fc.out_features == 192
    assert (loaded.vocab_size, loaded.context_length, loaded.text_width) == (49408, 77, 128)
    assert len(loaded.transformer.resblocks) == 2 and loaded.embed_dim == 16
    assert loaded.transformer.resblocks[0].mlp.c_fc.out_features == 256
    images = torch.randn(2, 3, 48, 48)
    tokens = loaded.tokenize(PROMPTS)
    with torch.no_grad():
        for ours, expected in zip(loaded(images, tokens), model(images, tokens)):
            torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)

    # What shapes cannot tell is overridable; the position table follows a new img_size.
    bigger = FaceCLIP.from_pretrained(path, vision_cfg=dict(img_size=64), text_causal=False)
    assert bigger.visual.positional_embedding.shape == (1 + 16, 128)
    assert bigger.text_causal is False
    assert bigger.encode_image(torch.randn(1, 3, 64, 64)).shape == (1, 16)


def test_init_cfg_pretrained_and_api(tmp_path):
    from faceanalysis.apis import load_face_clip
    model, state_dict = _farl_like(seed=1)
    path = tmp_path / 'farl.pth'
    torch.save({'state_dict': state_dict}, path)
    config = infer_clip_config(model.state_dict())
    built = FaceCLIP(**config, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    built.init_weights()
    assert torch.equal(built.visual.proj, model.visual.proj)
    assert torch.equal(built.token_embedding.weight, model.token_embedding.weight)
    loaded = load_face_clip(path)
    assert isinstance(loaded, FaceCLIP) and not loaded.training
    assert torch.equal(loaded.text_projection, model.text_projection)


def test_registry_builds_face_clip():
    from faceanalysis.registry import MODELS
    model = MODELS.build(dict(type='FaceCLIP', embed_dim=32, vision_cfg=TINY_VISION,
                              text_cfg=TINY_TEXT))
    assert isinstance(model, FaceCLIP)
    # A preset image tower keeps its own switches (MCF: erf GELU, no ln_pre).
    mcf = FaceCLIP(embed_dim=32, vision_cfg=dict(TINY_VISION, type='MCF'), text_cfg=TINY_TEXT)
    assert type(mcf.visual).__name__ == 'MCF' and mcf.visual.ln_pre is None
    assert isinstance(mcf.visual.transformer.resblocks[0].mlp.act, torch.nn.GELU)
    with pytest.raises(ValueError, match='embeddings'):
        FaceCLIP(embed_dim=32, vision_cfg=dict(TINY_VISION, output_dim=16), text_cfg=TINY_TEXT)
