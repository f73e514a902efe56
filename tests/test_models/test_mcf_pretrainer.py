"""MCFPretrainer, MAEDecoder and FrozenViTTeacher on tiny models (32 px, patch 8: 16 patches)."""
import types
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import load_state_dict as mmengine_load_state_dict
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from faceanalysis.converters import load_visual_state_dict
from faceanalysis.models.backbones import MCF
from faceanalysis.models.pretrainers.mae_decoder import MAEDecoder, patchify, unpatchify
from faceanalysis.models.pretrainers.mcf_pretrainer import MCFMomentumHook, MCFPretrainer
from faceanalysis.models.teachers.frozen_vit import FrozenViTTeacher
from faceanalysis.registry import MODELS

TINY = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
TEACHER = dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64)
SIZE, PATCH, BATCH = 32, 8, 4


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared 2-core machine: one intra-op thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_mcf(seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault('teacher', dict(
        backbone=dict(type='MCF', arch=TEACHER, img_size=SIZE, patch_size=PATCH),
        out_indices=(0, 2), allow_random_init=True))
    return MCFPretrainer(
        encoder=dict(type='MCF', arch=TINY, img_size=SIZE, patch_size=PATCH),
        decoder=dict(embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64),
        projector_hidden_dims=64, projection_dims=16, **kwargs)


def image_batch(seed=0, batch=BATCH):
    generator = torch.Generator().manual_seed(seed)
    return dict(img=torch.randint(0, 256, (batch, 3, SIZE, SIZE), dtype=torch.uint8,
                                  generator=generator))


def optim_wrapper(model, lr=1e-3, accumulative_counts=1, optimizer=torch.optim.AdamW):
    params = [param for param in model.parameters() if param.requires_grad]
    return OptimWrapper(optimizer(params, lr=lr), accumulative_counts=accumulative_counts)


def snapshot(params):
    return [param.detach().clone() for param in params]


def momentum_params(model):
    online = [*model.online_encoder.parameters(), *model.online_projector.parameters()]
    target = [*model.target_encoder.parameters(), *model.target_projector.parameters()]
    return online, target


# ------------------------------------------------------------------------------ masking
def test_encoders_see_a_quarter_of_the_patches_plus_cls():
    model = tiny_mcf()
    seen = {}

    def record(name):
        return lambda module, args: seen.__setitem__(name, args[0].detach().clone())

    model.online_encoder.transformer.resblocks[0].register_forward_pre_hook(record('online'))
    model.target_encoder.transformer.resblocks[0].register_forward_pre_hook(record('target'))
    model.decoder.transformer.resblocks[0].register_forward_pre_hook(record('decoder'))
    kept_calls = []
    draw = model.random_keep_indices
    model.random_keep_indices = lambda *args: kept_calls.append(draw(*args)) or kept_calls[-1]
    model.attach_optimizer(optim_wrapper(model))
    images = model.data_preprocessor(image_batch())['images']
    model(images, mode='loss')

    assert seen['online'].shape == (BATCH, 1 + 4, 32)  # 25% of 16 patches + CLS
    assert seen['target'].shape == (BATCH, 1 + 4, 32)
    assert seen['decoder'].shape == (BATCH, 1 + 16, 32)  # every patch, mask tokens included
    # The visible tokens are exactly the embedded patches at the kept grid positions.
    tokens, _ = model.online_encoder.prepare_tokens(images)
    online_kept = kept_calls[0]
    expected = torch.stack([tokens[i, 1:][online_kept[i]] for i in range(BATCH)])
    torch.testing.assert_close(seen['online'][:, 1:], expected)
    torch.testing.assert_close(seen['online'][:, 0], tokens[:, 0])


def test_the_two_views_have_independent_masks():
    model = tiny_mcf()
    kept_calls = []
    draw = model.random_keep_indices
    model.random_keep_indices = lambda *args: kept_calls.append(draw(*args)) or kept_calls[-1]
    model.attach_optimizer(optim_wrapper(model))
    images = model.data_preprocessor(image_batch(batch=8))['images']
    model(images, mode='loss')
    assert len(kept_calls) == 2  # one draw per view
    online, target = kept_calls
    for kept in (online, target):
        assert kept.shape == (8, 4)
        assert bool((kept.diff(dim=1) > 0).all()) and 0 <= kept.min() and kept.max() < 16
    # Two independent 4-of-16 draws coincide with probability 1/1820 per sample.
    assert not torch.equal(online, target)
    # ... and masks differ between samples of one view.
    assert len({tuple(row.tolist()) for row in online}) > 1


def test_patchify_is_mae_order_and_unpatchify_inverts_it():
    images = torch.randn(2, 3, 16, 24)
    patches = patchify(images, 8)
    reference = images.reshape(2, 3, 2, 8, 3, 8).permute(0, 2, 4, 3, 5, 1).reshape(2, 6, 192)
    # MAE: einsum('nchpwq->nhwpqc'): pixel (row, col, channel) inside a patch
    mae = torch.einsum('nchpwq->nhwpqc', images.reshape(2, 3, 2, 8, 3, 8)).reshape(2, 6, 192)
    torch.testing.assert_close(patches, reference)
    torch.testing.assert_close(patches, mae)
    torch.testing.assert_close(unpatchify(patches, (2, 3), 8), images)


def test_decoder_puts_visible_tokens_back_at_their_grid_positions():
    torch.manual_seed(0)
    decoder = MAEDecoder(in_dims=32, grid_size=(4, 4), patch_size=8, embed_dims=32,
                         num_layers=1, num_heads=4, feedforward_channels=64)
    seen = {}
    decoder.transformer.resblocks[0].register_forward_pre_hook(
        lambda module, args: seen.__setitem__('tokens', args[0]))
    latent = torch.randn(2, 1 + 4, 32)
    kept = torch.tensor([[0, 5, 6, 15], [1, 2, 3, 4]])
    out = decoder(latent, kept)
    assert out.shape == (2, 16, 8 * 8 * 3)
    embedded = decoder.embed(latent)
    pos = decoder.positional_embedding
    tokens = seen['tokens']
    torch.testing.assert_close(tokens[:, 0], embedded[:, 0] + pos[0])
    for sample in range(2):
        for slot, index in enumerate(kept[sample].tolist()):
            torch.testing.assert_close(tokens[sample, 1 + index],
                                       embedded[sample, 1 + slot] + pos[1 + index])
        masked = sorted(set(range(16)) - set(kept[sample].tolist()))
        torch.testing.assert_close(tokens[sample, [1 + m for m in masked]],
                                   decoder.mask_token + pos[[1 + m for m in masked]])
    assert decoder.unpatchify(out).shape == (2, 3, 32, 32)


# ------------------------------------------------------------------------------ frozen parts
def test_teacher_is_frozen_gets_no_gradient_and_never_changes():
    model = tiny_mcf()
    teacher_before = snapshot(model.teacher.parameters())
    assert not any(param.requires_grad for param in model.teacher.parameters())
    assert not any(param.requires_grad for param in model.target_encoder.parameters())
    assert not any(param.requires_grad for param in model.target_projector.parameters())
    model.train()
    assert model.online_encoder.training and not model.teacher.training
    wrapper = optim_wrapper(model, lr=1e-2)
    for step in range(3):
        model.train_step(image_batch(step), wrapper)
    for before, param in zip(teacher_before, model.teacher.parameters()):
        assert param.grad is None
        assert torch.equal(before, param)
    # The gradient does flow *through* the teacher into the decoder.
    images = model.data_preprocessor(image_batch())['images']
    model(images, mode='loss')['loss_feat'].backward()
    assert model.decoder.pred.weight.grad is not None
    assert model.decoder.pred.weight.grad.abs().sum() > 0
    assert all(param.grad is None for param in model.teacher.parameters())


def test_target_moves_by_momentum_only_after_real_optimizer_steps():
    model = tiny_mcf(momentum=0.9)
    wrapper = optim_wrapper(model, lr=0.1, accumulative_counts=2, optimizer=torch.optim.SGD)
    online, target = momentum_params(model)
    start = snapshot(target)
    for online_param, target_param in zip(online, target):  # target starts as a copy
        assert torch.equal(online_param, target_param)

    model.train_step(image_batch(0), wrapper)  # accumulation micro-step: no optimizer step
    assert all(torch.equal(a, b) for a, b in zip(start, target))
    assert all(torch.equal(a, b) for a, b in zip(start, online))

    model.train_step(image_batch(1), wrapper)  # optimizer step
    stepped = snapshot(online)
    assert not all(torch.equal(a, b) for a, b in zip(start, stepped))
    for before, after, new_online in zip(start, target, stepped):
        torch.testing.assert_close(after, 0.9 * before + 0.1 * new_online, rtol=1e-6,
                                   atol=1e-7)


def test_per_micro_batch_mode_moves_the_target_on_every_forward():
    model = tiny_mcf(momentum=0.9, momentum_update='per_micro_batch')
    wrapper = optim_wrapper(model, lr=0.1, accumulative_counts=2, optimizer=torch.optim.SGD)
    online, target = momentum_params(model)
    # Make the online weights differ from the target so that a move is visible.
    with torch.no_grad():
        for param in model.online_projector.parameters():
            param.add_(1.)
    start_target, start_online = snapshot(target), snapshot(online)
    model.train_step(image_batch(0), wrapper)  # micro-step, no optimizer step
    assert all(torch.equal(a, b) for a, b in zip(start_online, online))
    for before, after, source in zip(start_target, target, start_online):
        torch.testing.assert_close(after, 0.9 * before + 0.1 * source, rtol=1e-6, atol=1e-7)


def test_training_forward_needs_an_attached_optimizer_and_the_hook_attaches_it():
    model = tiny_mcf()
    images = model.data_preprocessor(image_batch())['images']
    with pytest.raises(RuntimeError, match='MCFMomentumHook'):
        model(images, mode='loss')
    wrapper = optim_wrapper(model)
    runner = types.SimpleNamespace(model=model, optim_wrapper=wrapper)
    MCFMomentumHook().before_train(runner)
    MCFMomentumHook().before_train(runner)  # idempotent: a single hook on the optimizer
    assert len(wrapper.optimizer._optimizer_step_post_hooks) == 1
    losses = model(images, mode='loss')
    assert set(losses) == {'loss_feat', 'loss_con'}
    with torch.no_grad():  # evaluation-style calls need no optimizer
        model.eval()
        model(images, mode='loss')


# ------------------------------------------------------------------------------ checkpoints
def test_state_dict_leaves_out_the_teacher_and_round_trips(tmp_path):
    model = tiny_mcf(seed=0)
    state = model.state_dict()
    assert not any(key.startswith('teacher.') for key in state)
    assert {'online_encoder.conv1.weight', 'target_encoder.ln_post.weight',
            'online_projector.4.running_mean', 'predictor.3.weight', 'decoder.pred.weight',
            'decoder.mask_token'} <= set(state)
    other = tiny_mcf(seed=1)
    teacher = snapshot(other.teacher.parameters())
    other.load_state_dict(state, strict=True)  # no missing teacher keys
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key
    # Stale teacher entries of another checkpoint never replace the configured teacher.
    stale = dict(state, **{'teacher.vit.conv1.weight': torch.zeros(32, 3, PATCH, PATCH)})
    other.load_state_dict(stale, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(teacher, other.teacher.parameters()))
    # MMEngine's loader (resume) finds nothing missing either (strict raises on any mismatch).
    mmengine_load_state_dict(other, state, strict=True)


def test_online_encoder_of_a_training_checkpoint_loads_into_a_downstream_backbone(tmp_path):
    model = tiny_mcf()
    path = tmp_path / 'iter_10.pth'
    torch.save({'meta': {'iter': 10}, 'state_dict': model.state_dict()}, path)
    visual, layout = load_visual_state_dict(str(path))
    backbone = MCF(arch=TINY, img_size=SIZE, patch_size=PATCH, out_indices=(1, ))
    backbone.load_visual_state_dict(visual)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        tokens, _ = model.online_encoder.prepare_tokens(images)
        _, taps = model.online_encoder.transformer(tokens, out_indices=(1, ))
        ours = backbone(images)[0]
    torch.testing.assert_close(ours, taps[0][:, 1:].transpose(1, 2).reshape(2, 32, 4, 4))


def moco_v3_vit(seed):
    """A tiny timm ViT with the MoCo-v3 switches (qkv bias, LN eps 1e-6, erf GELU)."""
    torch.manual_seed(seed)
    vit = VisionTransformer(img_size=SIZE, patch_size=PATCH, embed_dim=32, depth=3, num_heads=4,
                            mlp_ratio=2, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                            act_layer=nn.GELU, class_token=True, num_classes=0)
    with torch.no_grad():  # timm zero-inits biases / LN: randomise so a wrong map shows
        for name, param in vit.named_parameters():
            if name.endswith('bias') or 'norm' in name or name in ('cls_token', 'pos_embed'):
                param.add_(0.1 * torch.randn_like(param))
    return vit.eval()


def moco_v3_checkpoint(vit):
    """MoCo-v3's layout: base/momentum encoders (+ MLP heads) and predictor under DDP's prefix."""
    state = {f'module.base_encoder.{k}': v for k, v in vit.state_dict().items()}
    state.update({f'module.momentum_encoder.{k}': v + 1 for k, v in vit.state_dict().items()})
    for encoder in ('base_encoder', 'momentum_encoder'):
        state.update({
            f'module.{encoder}.head.0.weight': torch.randn(64, 32),
            f'module.{encoder}.head.1.weight': torch.randn(64),
            f'module.{encoder}.head.1.running_mean': torch.randn(64),
            f'module.{encoder}.head.1.num_batches_tracked': torch.tensor(7),
            f'module.{encoder}.head.3.weight': torch.randn(16, 64),
        })
    state['module.predictor.0.weight'] = torch.randn(64, 16)
    return {'epoch': 300, 'arch': 'vit_base', 'state_dict': state,
            'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}}


def test_teacher_loads_a_moco_v3_checkpoint_with_block_parity(tmp_path):
    vit = moco_v3_vit(seed=3)
    path = tmp_path / 'vit-tiny-300ep.pth.tar'
    torch.save(moco_v3_checkpoint(vit), path)
    teacher = MODELS.build(dict(type='FrozenViTTeacher', checkpoint=str(path), out_indices=(0, 2),
                                backbone=dict(type='MCF', arch=TEACHER, img_size=SIZE,
                                              patch_size=PATCH)))
    images = torch.randn(2, 3, SIZE, SIZE)
    expected = []
    handles = [vit.blocks[i].register_forward_hook(
        lambda module, args, out: expected.append(out.detach())) for i in (0, 2)]
    with torch.no_grad():
        vit.forward_features(images)
        taps = teacher(images)
    for handle in handles:
        handle.remove()
    assert len(taps) == 2 and all(tap.dtype == torch.float32 for tap in taps)
    for ours, reference in zip(taps, expected):
        assert ours.shape == (2, 1 + 16, 32)
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    # the base encoder, not the momentum one, was loaded; taps in the order asked
    reverse = FrozenViTTeacher(backbone=dict(type='MCF', arch=TEACHER, img_size=SIZE,
                                             patch_size=PATCH),
                               checkpoint=str(path), out_indices=(2, 0))
    with torch.no_grad():
        torch.testing.assert_close(reverse(images)[0], taps[1])
    # blocks after the last tap are dropped; the teacher stays in eval mode
    short = FrozenViTTeacher(backbone=dict(type='MCF', arch=TEACHER, img_size=SIZE,
                                           patch_size=PATCH),
                             checkpoint=str(path), out_indices=(1, ))
    assert len(short.vit.transformer.resblocks) == 2
    assert not short.train().training


def test_teacher_resizes_inputs_like_mcf_and_refuses_a_missing_checkpoint():
    torch.manual_seed(0)
    backbone = dict(type='MCF', arch=TEACHER, img_size=SIZE, patch_size=PATCH)
    teacher = FrozenViTTeacher(backbone=backbone, out_indices=(2, ), input_size=SIZE,
                               allow_random_init=True)
    small = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        resized = teacher(small)[0]
        direct = teacher(F.interpolate(small, size=SIZE))[0]
    torch.testing.assert_close(resized, direct)
    with pytest.raises(ValueError, match='needs a checkpoint'):
        FrozenViTTeacher(backbone=backbone)
    with pytest.raises(ValueError, match='out_indices'):
        FrozenViTTeacher(backbone=backbone, out_indices=(3, ), allow_random_init=True)


# ------------------------------------------------------------------------------ training
def test_a_few_steps_decrease_the_loss():
    model = tiny_mcf(seed=0)
    wrapper = optim_wrapper(model, lr=5e-3)
    batch = image_batch(0, batch=8)
    torch.manual_seed(1)
    losses = [model.train_step(batch, wrapper)['loss'].item() for _ in range(8)]
    # about 100 -> 85 with this seed; the masks are random at every step, so compare pairs
    assert sum(losses[-2:]) < 0.92 * sum(losses[:2]), losses


def test_predict_tensor_modes_and_bad_inputs():
    model = tiny_mcf().eval()
    images = model.data_preprocessor(image_batch())['images']
    with torch.no_grad():
        results = model(images, mode='predict', key=[f's{i}' for i in range(BATCH)])
        out = model(images, mode='tensor')
    assert len(results) == BATCH and results[1]['key'] == 's1'
    assert results[0]['feature'].shape == (32, )
    assert out['pred_images'].shape == images.shape and out['kept_indices'].shape == (BATCH, 4)
    assert out['latent'].shape == (BATCH, 5, 32)
    with pytest.raises(ValueError, match='expects images'):
        model(torch.randn(2, 3, 48, 48), mode='predict')
    with pytest.raises(ValueError, match='mode'):
        model(images, mode='features')
    with pytest.raises(ValueError, match='momentum_update'):
        tiny_mcf(momentum_update='per_epoch')
    with pytest.raises(ValueError, match='mask_ratio'):
        tiny_mcf(mask_ratio=0.99)


# ------------------------------------------------------------------------------ runner
class RandomFaces(torch.utils.data.Dataset):
    """16 fixed random uint8 images in the data contract's shape (``img`` + ``key``)."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        img = torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8, generator=generator)
        return dict(img=img, key=f'face{index}')


def runner_cfg(work_dir, max_iters, **kwargs):
    model = dict(
        type='MCFPretrainer',
        encoder=dict(type='MCF', arch=TINY, img_size=SIZE, patch_size=PATCH),
        decoder=dict(embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64),
        teacher=dict(type='FrozenViTTeacher', out_indices=(0, 2), allow_random_init=True,
                     backbone=dict(type='MCF', arch=TEACHER, img_size=SIZE, patch_size=PATCH)),
        projector_hidden_dims=64, projection_dims=16)
    return dict(
        model=model, work_dir=str(work_dir), default_scope='faceanalysis',
        train_dataloader=dict(dataset=RandomFaces(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(type='OptimWrapper', accumulative_counts=2,
                           optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95))),
        custom_hooks=[dict(type='MCFMomentumHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False)),
        randomness=dict(seed=0), log_level='WARNING', **kwargs)


@pytest.mark.scope('faceanalysis')
def test_runner_updates_target_per_optimizer_step_saves_without_teacher_and_resumes(work_dir):
    from mmengine.runner import Runner

    from faceanalysis.converters import load_checkpoint_file
    runner = Runner(**runner_cfg(work_dir, max_iters=4))
    model = runner.model
    updates = []
    update = model.update_target
    model.update_target = lambda: updates.append(1) or update()
    teacher = snapshot(model.teacher.parameters())
    runner.train()
    assert len(updates) == 2  # 4 iterations, accumulative_counts=2
    # Without paramwise_cfg MMEngine hands every parameter to AdamW, frozen ones included:
    # they get no gradient, hence no update and no weight decay.
    assert all(torch.equal(a, b) for a, b in zip(teacher, model.teacher.parameters()))
    checkpoint = load_checkpoint_file(str(work_dir / 'iter_4.pth'))
    assert 'online_encoder.conv1.weight' in checkpoint['state_dict']
    assert not any(key.startswith('teacher.') for key in checkpoint['state_dict'])

    resumed = Runner(**runner_cfg(work_dir, max_iters=6, resume=True,
                                  load_from=str(work_dir / 'iter_4.pth')))
    resumed.train()
    assert resumed.iter == 6
    saved = checkpoint['state_dict']['target_encoder.class_embedding']
    assert not torch.equal(resumed.model.target_encoder.class_embedding.cpu(), saved)
