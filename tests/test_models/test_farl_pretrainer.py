"""FaRLPretrainer: CLIP loss + MIM on one [clean; masked] forward (tiny models, CPU)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper, build_optim_wrapper
from torch import nn

from faceanalysis.models.face_clip import FaceCLIP
from faceanalysis.models.pretrainers.farl_pretrainer import FaRLPretrainer
from faceanalysis.registry import MODELS

VISION = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
              img_size=32, patch_size=8)
TEXT = dict(width=32, layers=1, heads=2, vocab_size=100, context_length=8)
TEACHER = dict(type='FaceViT', **VISION)
TARGETS = {
    'codebook': dict(type='CodebookTokenizer', teacher=TEACHER, vocab_size=24,
                     allow_random_init=True),
    'features': dict(type='TeacherFeatureTarget', teacher=TEACHER, allow_random_init=True),
}
#: masked patches per sample: unequal, so a per-sample mean would differ from the token mean
MASKED_PER_SAMPLE = (2, 5, 6, 3)


def build(target='codebook', vision=None, **kwargs):
    return FaRLPretrainer(clip=dict(embed_dim=16, vision_cfg=dict(VISION, **(vision or {})),
                                    text_cfg=TEXT),
                          mim_target=TARGETS[target], **kwargs)


def raw_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    size = len(MASKED_PER_SAMPLE)
    mask = torch.zeros(size, 16, dtype=torch.bool)
    for row, count in enumerate(MASKED_PER_SAMPLE):
        mask[row, torch.randperm(16, generator=generator)[:count]] = True
    return dict(img=torch.randint(0, 256, (size, 3, 32, 32), generator=generator,
                                  dtype=torch.uint8),
                text=torch.randint(1, 100, (size, 8), generator=generator), mim_mask=mask,
                key=[f's{i}' for i in range(size)])


def batch(model, seed=0):
    return model.data_preprocessor(raw_batch(seed), True)


@pytest.mark.parametrize('target', ['codebook', 'features'])
def test_forward_losses_are_finite_and_summed_correctly(target):
    model = MODELS.build(dict(type='FaRLPretrainer', clip=dict(embed_dim=16, vision_cfg=VISION,
                                                               text_cfg=TEXT),
                              mim_target=TARGETS[target])).train()
    losses = model(**batch(model), mode='loss')
    assert {'loss_contrastive', 'loss_mim', 'logit_scale'} <= set(losses)
    assert ('mim_acc' in losses) == (target == 'codebook')
    assert all(torch.isfinite(value).all() for value in losses.values())
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total, losses['loss_contrastive'] + losses['loss_mim'])
    if target == 'codebook':
        assert 0 <= log_vars['mim_acc'] <= 1 and not losses['mim_acc'].requires_grad


def test_gradient_reaches_mask_token_head_and_towers_never_the_teacher():
    model = build().train()
    losses = model(**batch(model), mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = dict(model.named_parameters())
    for name in ('clip.visual.mask_token', 'clip.visual.conv1.weight', 'clip.visual.proj',
                 'clip.visual.transformer.resblocks.1.mlp.c_fc.weight',
                 'clip.token_embedding.weight', 'clip.text_projection', 'clip.logit_scale'):
        assert grads[name].grad is not None and grads[name].grad.abs().sum() > 0, name
    head = dict(model.mim_head.named_parameters())
    assert head and all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.values())
    assert all(p.grad is None and not p.requires_grad for p in model.mim_target.parameters())


def test_teacher_unchanged_after_optimizer_steps():
    model = build().train()
    teacher_before = {name: value.detach().clone() for name, value in
                      [*model.mim_target.named_parameters(), *model.mim_target.named_buffers()]}
    assert any(name.startswith('teacher.') for name in teacher_before)
    student_before = model.clip.visual.conv1.weight.detach().clone()
    optim_wrapper = build_optim_wrapper(
        model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2,
                                                         weight_decay=0.5)))
    for seed in range(2):
        log_vars = model.train_step(raw_batch(seed), optim_wrapper)
        assert {'loss', 'loss_contrastive', 'loss_mim', 'mim_acc'} <= set(log_vars)
    after = dict([*model.mim_target.named_parameters(), *model.mim_target.named_buffers()])
    for name, value in teacher_before.items():
        assert torch.equal(after[name], value), name
    assert not model.mim_target.teacher.training
    assert not torch.equal(model.clip.visual.conv1.weight, student_before)


class FixedTargets(nn.Module):
    """A MIM target returning fixed tensors (the interface of faceanalysis.models.mim_targets)."""

    def __init__(self, targets, reference):
        super().__init__()
        self.targets = targets
        self.reference = reference  # the real target, for its loss
        self.discrete = reference.discrete
        self.num_outputs = reference.num_outputs

    def forward(self, images):
        return self.targets

    def token_losses(self, pred, targets):
        return self.reference.token_losses(pred, targets)


@pytest.mark.parametrize('target', ['codebook', 'features'])
def test_mim_loss_is_a_direct_recomputation_at_masked_positions(target):
    model = build(target, mim_loss_weight=0.5).train()
    data = batch(model)
    images, mask = data['images'], data['mim_mask']
    generator = torch.Generator().manual_seed(1)
    if target == 'codebook':
        fixed = torch.randint(0, 24, (4, 16), generator=generator)
    else:
        fixed = torch.randn(4, 16, 32, generator=generator)
    model.mim_target = FixedTargets(fixed.clone(), model.mim_target)
    losses = model(**data, mode='loss')

    # independently: the masked copy alone through the tower and every head stage, all patches
    visual, head = model.clip.visual, model.mim_head
    tokens, _ = visual.prepare_tokens(images, mask=mask)
    tokens, _ = visual.transformer(tokens)
    tokens, _ = head.lm_transformer(tokens)
    outputs = head.lm_head(head.ln_lm(tokens[:, 1:]))  # (B, N, K)
    if target == 'codebook':
        expected = F.cross_entropy(outputs[mask], fixed[mask])
        accuracy = (outputs[mask].argmax(-1) == fixed[mask]).float().mean()
        torch.testing.assert_close(losses['mim_acc'], accuracy)
    else:
        expected = F.smooth_l1_loss(outputs[mask], fixed[mask])
    torch.testing.assert_close(losses['loss_mim'], 0.5 * expected, atol=1e-6, rtol=1e-5)

    # targets at unmasked positions do not matter; a masked one does
    changed = fixed.clone()
    changed[~mask] = changed[~mask].flip(0)
    model.mim_target.targets = changed
    assert torch.equal(model(**data, mode='loss')['loss_mim'], losses['loss_mim'])
    changed = fixed.clone()
    first = mask.nonzero()[0]
    changed[first[0], first[1]] = (changed[first[0], first[1]] + 1) % 24 \
        if target == 'codebook' else changed[first[0], first[1]] + 3
    model.mim_target.targets = changed
    assert not torch.equal(model(**data, mode='loss')['loss_mim'], losses['loss_mim'])


@pytest.mark.parametrize('pool', ['cls', 'avg_all'])
def test_clean_half_of_the_2b_forward_equals_a_separate_clean_forward(pool):
    model = build(vision=dict(pool=pool)).train()
    data = batch(model)
    features = model(**data, mode='tensor')
    torch.testing.assert_close(features['image'],
                               model.clip.encode_image(data['images'], normalize=True),
                               atol=1e-5, rtol=0)
    predicted = model(**data, mode='predict')
    torch.testing.assert_close(torch.stack([p['image_embedding'] for p in predicted]),
                               features['image'].detach(), atol=1e-5, rtol=0)
    assert [p['key'] for p in predicted] == data['key']


def _captured_step_grads(model, data):
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.))
    grads = {}

    def capture(**kwargs):
        grads.update({name: p.grad.detach().clone() for name, p in model.named_parameters()
                      if p.grad is not None})

    optim_wrapper.step = capture
    log_vars = model.train_step(data, optim_wrapper)
    return grads, log_vars


def test_feature_cache_accumulation_matches_one_full_batch_step():
    single = build().train()
    accumulated = copy.deepcopy(single)
    accumulated.accumulation_steps = 2
    full_grads, full_log = _captured_step_grads(single, raw_batch())
    split_grads, split_log = _captured_step_grads(accumulated, raw_batch())
    assert set(full_grads) == set(split_grads)
    assert {'clip.visual.mask_token', 'mim_head.lm_head.weight', 'clip.text_projection'} <= \
        set(full_grads)
    for name, grad in full_grads.items():
        torch.testing.assert_close(split_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
    for name in ('loss_contrastive', 'loss_mim', 'mim_acc', 'loss'):
        torch.testing.assert_close(split_log[name], full_log[name], atol=1e-5, rtol=1e-5)


def test_state_dict_layout_and_export_to_released_farl_keys():
    model = build()
    state = model.state_dict()
    assert 'clip.visual.mask_token' in state and 'clip.logit_scale' in state
    assert {'mim_head.lm_transformer.resblocks.0.attn.in_proj_weight',
            'mim_head.lm_transformer.resblocks.0.mlp.c_fc.weight', 'mim_head.ln_lm.weight',
            'mim_head.lm_head.weight', 'mim_head.lm_head.bias'} <= set(state)
    assert not any(key.startswith('mim_head.lm_transformer.resblocks.1.') for key in state)
    assert state['mim_head.lm_head.weight'].shape == (24, 32)
    # the codebook is saved, the frozen teacher is not (rebuilt from its file)
    assert 'mim_target.codebook' in state
    assert not any(key.startswith('mim_target.teacher.') for key in state)
    model.load_state_dict(state, strict=True)
    # FaRL's ep64 layout: the head under visual.; FaceCLIP loads it (mask token kept, head ignored)
    released = {key[len('clip.'):]: value for key, value in state.items()
                if key.startswith('clip.')}
    released.update({'visual.' + key[len('mim_head.'):]: value for key, value in state.items()
                     if key.startswith('mim_head.')})
    clip = FaceCLIP(embed_dim=16, vision_cfg=dict(VISION, mask_token=True), text_cfg=TEXT)
    clip.load_state_dict(released, strict=True)
    assert torch.equal(clip.visual.mask_token, state['clip.visual.mask_token'])
    assert 'visual.lm_head.weight' in clip.ignored_checkpoint_keys


def test_bad_configurations_and_batches_raise():
    with pytest.raises(ValueError, match='token_drop_ratio'):
        build(token_drop_ratio=0.5)
    with pytest.raises(ValueError, match='mask_token=True'):
        build(vision=dict(mask_token=False))
    with pytest.raises(ValueError, match='num_outputs'):
        build(mim_head=dict(num_outputs=7))
    model = build()
    data = batch(model)
    with pytest.raises(ValueError, match='BlockwiseMaskGenerator'):
        model(**{k: v for k, v in data.items() if k != 'mim_mask'}, mode='loss')
    with pytest.raises(ValueError, match='grid_size'):
        model(**dict(data, mim_mask=data['mim_mask'][:, :9]), mode='loss')
    model.token_drop_ratio = 0.5  # e.g. set by a hook meant for FLIP
    with pytest.raises(ValueError, match='never drops'):
        model(**data, mode='loss')
    coarse = FaRLPretrainer(clip=dict(embed_dim=16, vision_cfg=VISION, text_cfg=TEXT),
                            mim_target=dict(TARGETS['features'],
                                            teacher=dict(TEACHER, patch_size=16)))
    with pytest.raises(ValueError, match='patch grid'):
        coarse(**data, mode='loss')
