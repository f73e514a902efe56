"""FLIP-80M fine-tuning: a CLIPPretrainer initialised from a Hugging Face CLIPModel directory.

The released FLIP-80M models are HF ``CLIPModel`` s fine-tuned from OpenAI CLIP (pretrain.md §5);
``configs/pretrain/flip80m-b16_finetune.py`` starts from such a directory through
``clip.init_cfg``. Here a tiny randomly initialised CLIPModel saved with ``save_pretrained``
stands in for it: after ``init_weights`` the pretrainer embeds images and text exactly as the HF
model does, trains with an unclamped temperature, and the result exports back to a CLIPModel.
"""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

import faceanalysis.models  # noqa: F401
from faceanalysis.models.pretrainers import CLIPPretrainer

transformers = pytest.importorskip('transformers')


@pytest.fixture(scope='module')
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=12,
                         hidden_act='quick_gelu', bos_token_id=49406, eos_token_id=2,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8,
                           hidden_act='quick_gelu'),
        projection_dim=16, logit_scale_init_value=5.0)  # exp(5) = 148 > 100: never clamped
    model = transformers.CLIPModel(config).eval()
    path = tmp_path_factory.mktemp('flip80m') / 'FLIP-tiny'
    model.save_pretrained(str(path))
    return path, model


CLIP_CFG = dict(
    embed_dim=16,
    vision_cfg=dict(type='FLIP80M', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                              feedforward_channels=64),
                    img_size=32, patch_size=8, final_norm=True),
    text_cfg=dict(width=32, layers=1, heads=2, feedforward_channels=64, context_length=12))


def _batch():
    generator = torch.Generator().manual_seed(3)
    text = torch.randint(1, 400, (4, 12), generator=generator)
    text[:, 0], text[:, 7:] = 49406, 0
    text[:, 6] = 49407  # EOT: the largest id, where HF (eos_token_id 2) pools by argmax
    return dict(img=torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8,
                                  generator=generator), text=text)


def test_initialised_from_hf_clip_equals_it_and_fine_tunes(hf_dir):
    path, reference = hf_dir
    clip = copy.deepcopy(CLIP_CFG)
    clip['init_cfg'] = dict(type='Pretrained', checkpoint=str(path))
    model = CLIPPretrainer(clip=clip, logit_scale_clamp=None)
    model.init_weights()
    model.eval()

    data = model.data_preprocessor(_batch(), False)
    with torch.no_grad():
        image = reference.get_image_features(pixel_values=data['images'])
        text = reference.get_text_features(input_ids=data['text'])
        image = getattr(image, 'pooler_output', image)
        text = getattr(text, 'pooler_output', text)
        samples = model(**data, mode='predict')
    ours_image = torch.stack([s['image_embedding'] for s in samples])
    ours_text = torch.stack([s['text_embedding'] for s in samples])
    torch.testing.assert_close(ours_image, torch.nn.functional.normalize(image, dim=-1),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_text, torch.nn.functional.normalize(text, dim=-1),
                               atol=1e-5, rtol=1e-5)

    # TencentPretrain never clamps the temperature: exp(5) is used as is.
    model.train()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    log_vars = model.train_step(_batch(), OptimWrapper(torch.optim.AdamW(model.parameters(),
                                                                         lr=1e-3)))
    assert log_vars['logit_scale'].item() == pytest.approx(torch.tensor(5.).exp().item(),
                                                           rel=1e-5)
    assert all(not torch.equal(before[k], v) for k, v in model.named_parameters()
               if v.requires_grad)
