"""ALIP: consistency gates, adaptive loss and ``ALIPPretrainer`` (pretrain.md §6).

Gate and loss values are checked against numbers written out by hand from the formulas
(``math.exp`` on fixed 2-d unit vectors), including the EMAs' first two steps from their initial
value 1 and the condition under which the description gate (DCG) applies. The pretrainer runs a
tiny model (embed 32, 2 layers, 32 px images, patch 8, context 16) on the CPU.
"""
import math
import multiprocessing
import os

import pytest
import torch
from mmengine.optim import OptimWrapper

import faceanalysis.models.pretrainers.alip_pretrainer  # noqa: F401  (registers the classes)
from faceanalysis.models.losses import clip_loss
from faceanalysis.models.losses.adaptive_clip_loss import (AdaptiveClipLoss, ConsistencyGates,
                                                          per_sample_clip_losses)
from faceanalysis.models.pretrainers.alip_pretrainer import ALIPPretrainer
from faceanalysis.registry import MODELS


def unit(degrees):
    """A 2-d unit vector at ``degrees``."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Three samples, E = 2, angles chosen so the cosines are round numbers:
#   sample 0: t = c (s_tc = 1), v at 60 deg (s_it = s_ic = 0.5): LCG >= 1, DCG off
#   sample 1: c at 90 deg of t (s_tc = 0), v = t (s_it = 1, s_ic = 0): DCG on, W_t > 1
#   sample 2: c opposite t (s_tc = -1), v at 90 deg (s_it = s_ic = 0): DCG on
IMAGE = torch.tensor([unit(60), unit(0), unit(90)])
TEXT = torch.tensor([unit(0), unit(0), unit(0)])
CAPTION = torch.tensor([unit(0), unit(90), unit(180)])
S_TC, S_IT, S_IC = [1., 0., -1.], [0.5, 1., 0.], [0.5, 0., 0.]


def cosines():
    return ((TEXT * CAPTION).sum(-1), (IMAGE * TEXT).sum(-1), (IMAGE * CAPTION).sum(-1))


def expected_weights(m_tc, m_it, m_ic, gamma=2.):
    """The gate formulas of pretrain.md §6.1, sample by sample, in plain Python."""
    w_s, w_t, w_c, active = [], [], [], []
    for s_tc, s_it, s_ic in zip(S_TC, S_IT, S_IC):
        lcg = math.exp(gamma * (s_tc - m_tc))
        on = lcg < 1
        active.append(on)
        w_s.append(min(1., lcg))
        w_t.append(math.exp(gamma * (s_it - m_it)) if on else 1.)
        w_c.append(math.exp(gamma * (s_ic - m_ic)) if on else 1.)
    return w_s, w_t, w_c, active


def loop_loss(image, text, scale, weights):
    """mean_i(w_i * (CE(image_i -> texts) + CE(text_i -> images)) / 2), as a double loop."""
    n = len(image)
    dot = [[sum(a * b for a, b in zip(image[i], text[j])) for j in range(n)] for i in range(n)]
    total = 0.
    for i in range(n):
        row = [scale * dot[i][j] for j in range(n)]  # image i against every text
        col = [scale * dot[j][i] for j in range(n)]  # text i against every image
        ce_image = math.log(sum(math.exp(x) for x in row)) - row[i]
        ce_text = math.log(sum(math.exp(x) for x in col)) - col[i]
        total += weights[i] * (ce_image + ce_text) / 2
    return total / n


# ---------------------------------------------------------------------- gates
def test_fixture_cosines_are_the_written_numbers():
    for got, want in zip(cosines(), (S_TC, S_IT, S_IC)):
        torch.testing.assert_close(got, torch.tensor(want), atol=1e-6, rtol=0)


def test_gates_ema_first_two_steps_and_weights_use_the_updated_ema():
    gates = ConsistencyGates()
    assert (gates.m_tc.item(), gates.m_it.item(), gates.m_ic.item()) == (1., 1., 1.)
    assert gates.m_tc.dtype == torch.float32
    mean_tc, mean_it, mean_ic = sum(S_TC) / 3, sum(S_IT) / 3, sum(S_IC) / 3  # 0, 1/2, 1/6

    # step 1: m = 0.99 * 1 + 0.01 * mean(s); the weights use these UPDATED values (ALIP train.py)
    m1 = (0.99 + 0.01 * mean_tc, 0.99 + 0.01 * mean_it, 0.99 + 0.01 * mean_ic)
    w = gates(*cosines())
    assert gates.m_tc.item() == pytest.approx(m1[0], abs=1e-7)
    assert gates.m_it.item() == pytest.approx(m1[1], abs=1e-7)
    assert gates.m_ic.item() == pytest.approx(m1[2], abs=1e-7)
    w_s, w_t, w_c, active = expected_weights(*m1)
    assert active == [False, True, True]  # exp(2 (1 - 0.99)) > 1 for sample 0
    torch.testing.assert_close(w.sample, torch.tensor(w_s), rtol=1e-6, atol=0)
    torch.testing.assert_close(w.raw, torch.tensor(w_t), rtol=1e-6, atol=0)
    torch.testing.assert_close(w.caption, torch.tensor(w_c), rtol=1e-6, atol=0)
    assert w.dcg_active.tolist() == active
    # W_s clipped at 1; DCG off for sample 0 although exp(2 (0.5 - m_it)) would be < 1;
    # W_t of sample 1 is exp(2 (1 - 0.995)) = exp(0.01) > 1: not clipped
    assert w.sample[0].item() == 1. and w.raw[0].item() == 1. and w.caption[0].item() == 1.
    assert w.raw[1].item() == pytest.approx(math.exp(0.01), rel=1e-6) and w.raw[1] > 1
    # the weights did not use the pre-update EMAs (1.0)
    assert w.sample[1].item() != pytest.approx(math.exp(2 * (0. - 1.)), rel=1e-4)

    # step 2, same batch: m = mu + (1 - mu) * 0.99 ** 2
    w = gates(*cosines())
    m2 = tuple(mu + (1 - mu) * 0.99 ** 2 for mu in (mean_tc, mean_it, mean_ic))
    for buffer, want in zip((gates.m_tc, gates.m_it, gates.m_ic), m2):
        assert buffer.item() == pytest.approx(want, abs=1e-7)
    w_s, w_t, w_c, active = expected_weights(*m2)
    torch.testing.assert_close(w.sample, torch.tensor(w_s), rtol=1e-6, atol=0)
    torch.testing.assert_close(w.raw, torch.tensor(w_t), rtol=1e-6, atol=0)
    torch.testing.assert_close(w.caption, torch.tensor(w_c), rtol=1e-6, atol=0)

    logs = gates.log_vars(w, *cosines())
    assert not any('loss' in name for name in logs)
    assert logs['gate_m_tc'].item() == pytest.approx(m2[0], abs=1e-7)
    assert logs['gate_ws_mean'].item() == pytest.approx(sum(w_s) / 3, rel=1e-6)
    assert logs['gate_wt_mean'].item() == pytest.approx(sum(w_t) / 3, rel=1e-6)
    assert logs['gate_wc_mean'].item() == pytest.approx(sum(w_c) / 3, rel=1e-6)
    assert logs['gate_dcg_fraction'].item() == pytest.approx(2 / 3)


def test_gates_gamma_momentum_no_update_and_bad_input():
    gates = ConsistencyGates(momentum=0.9, gamma=3., init_value=0.5)
    w = gates(*cosines(), update=False)  # weights from the EMAs as they are
    assert gates.m_tc.item() == 0.5
    w_s, w_t, w_c, active = expected_weights(0.5, 0.5, 0.5, gamma=3.)
    assert active == [False, True, True]
    torch.testing.assert_close(w.sample, torch.tensor(w_s), rtol=1e-6, atol=0)
    torch.testing.assert_close(w.raw, torch.tensor(w_t), rtol=1e-6, atol=0)
    gates.update(*cosines())
    assert gates.m_it.item() == pytest.approx(0.9 * 0.5 + 0.1 * 0.5, abs=1e-7)
    # half-precision similarities: the arithmetic is float32
    w16 = gates(*(s.half() for s in cosines()), update=False)
    assert w16.sample.dtype == torch.float32
    with pytest.raises(ValueError, match='one length'):
        gates(torch.zeros(3), torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match='momentum'):
        ConsistencyGates(momentum=1.)


# ---------------------------------------------------------------------- loss
def test_adaptive_loss_equals_a_loop_implementation():
    gates = ConsistencyGates()
    w = gates(*cosines())
    scale = 10.
    loss = AdaptiveClipLoss()(IMAGE, TEXT, CAPTION, torch.tensor(scale), w)
    assert set(loss) == {'loss_raw', 'loss_caption'}
    w_s, w_t, w_c, _ = expected_weights(gates.m_tc.item(), gates.m_it.item(), gates.m_ic.item())
    raw = loop_loss(IMAGE.tolist(), TEXT.tolist(), scale, [a * b for a, b in zip(w_s, w_t)])
    caption = loop_loss(IMAGE.tolist(), CAPTION.tolist(), scale,
                        [a * b for a, b in zip(w_s, w_c)])
    assert loss['loss_raw'].item() == pytest.approx(raw, rel=1e-5)
    assert loss['loss_caption'].item() == pytest.approx(caption, rel=1e-5)
    # unit weights: the per-sample losses average to the plain CLIP loss
    ones = torch.ones(3)
    clip = MODELS.build(dict(type='ClipContrastiveLoss', local_loss=False,
                             gather_with_grad=False))
    plain = AdaptiveClipLoss().weighted_loss(IMAGE, TEXT, torch.tensor(scale), ones, ones)
    torch.testing.assert_close(plain, clip(IMAGE, TEXT, torch.tensor(scale)))
    with pytest.raises(ValueError, match='one per global sample'):
        AdaptiveClipLoss().weighted_loss(IMAGE, TEXT, torch.tensor(scale), torch.ones(2), ones)


def test_adaptive_loss_simulated_two_ranks(monkeypatch):
    """Rank r's loss over the gathered G x G matrix equals the one-process loss, and the
    gradient reaching rank r's local features equals the one-process gradient of its rows."""
    torch.manual_seed(0)
    features = [torch.nn.functional.normalize(torch.randn(6, 4), dim=-1) for _ in range(3)]
    scale = torch.tensor(5.)
    gates = ConsistencyGates()
    sims = (features[1] * features[2]).sum(-1), (features[0] * features[1]).sum(-1), \
        (features[0] * features[2]).sum(-1)
    weights = gates(*sims)
    leaves = [f.clone().requires_grad_() for f in features]
    reference = AdaptiveClipLoss()(*leaves, scale, weights)
    sum(reference.values()).backward()

    world, size = 2, 3
    for rank in range(world):
        state = dict(call=0)

        def fake_all_gather(out, tensor, state=state):
            # the three gathers come in order image, text, caption
            full = features[state['call']]
            state['call'] += 1
            for r in range(world):
                out[r].copy_(full[r * size:(r + 1) * size])

        monkeypatch.setattr(clip_loss, 'get_dist_info', lambda rank=rank: (rank, world))
        monkeypatch.setattr(clip_loss.dist, 'all_gather', fake_all_gather)
        local = [f[rank * size:(rank + 1) * size].clone().requires_grad_() for f in features]
        losses = AdaptiveClipLoss()(*local, scale, weights)
        for name in losses:
            torch.testing.assert_close(losses[name], reference[name])
        sum(losses.values()).backward()
        for leaf, ref in zip(local, leaves):
            torch.testing.assert_close(leaf.grad, ref.grad[rank * size:(rank + 1) * size])


def test_per_sample_losses_are_float32_for_half_inputs():
    losses = per_sample_clip_losses(IMAGE.bfloat16(), TEXT.bfloat16(), torch.tensor(3.))
    assert losses.dtype == torch.float32 and losses.shape == (3,)


# ---------------------------------------------------------------------- pretrainer
TINY_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                              feedforward_channels=128), img_size=32, patch_size=8),
    text_cfg=dict(context_length=16, width=32, layers=2, heads=2))


def tiny_model(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(type='ALIPPretrainer', clip=TINY_CLIP, **kwargs))


def tiny_batch(batch_size=4, seed=1):
    generator = torch.Generator().manual_seed(seed)

    def tokens():
        ids = torch.randint(1, 49000, (batch_size, 16), generator=generator)
        ids[:, 0] = 49406
        ids[:, 10] = 49407  # EOT: the largest id, pooled by eot_argmax
        ids[:, 11:] = 0
        return ids

    return dict(img=torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8,
                                  generator=generator),
                text=tokens(), text_aux=tokens())


def buffers(model):
    return torch.stack([model.gates.m_tc, model.gates.m_it, model.gates.m_ic]).clone()


def test_default_is_alips_vit_b32():
    with torch.device('meta'):  # shapes only: 151 M parameters are not allocated
        model = MODELS.build(dict(type='ALIPPretrainer'))
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes['clip.visual.conv1.weight'] == (768, 3, 32, 32)
    assert shapes['clip.visual.positional_embedding'] == (50, 768)
    assert shapes['clip.visual.proj'] == (768, 512)
    assert shapes['clip.token_embedding.weight'] == (49408, 512)
    assert shapes['clip.positional_embedding'] == (77, 512)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(151.28e6, rel=1e-4)


def test_pretrainer_defaults_forward_and_gradients():
    model = tiny_model()
    assert isinstance(model, ALIPPretrainer)
    assert model.logit_scale_clamp == 'param'
    assert isinstance(model.loss_module, AdaptiveClipLoss)
    assert not model.loss_module.gather_with_grad
    mlp_acts = {type(m).__name__ + str(getattr(m, 'approximate', '')) for name, m in
                model.named_modules() if name.endswith('mlp.act')}
    assert mlp_acts == {'GELUnone'}  # erf GELU in both towers
    assert 'gates.m_tc' not in dict(model.named_parameters())

    model.train()
    data = model.data_preprocessor(tiny_batch(), True)
    features = model(**data, mode='tensor')
    assert set(features) == {'image', 'text', 'text_aux', 'losses'}
    for key in ('image', 'text', 'text_aux'):
        torch.testing.assert_close(features[key].norm(dim=-1), torch.ones(4))
    # one shared text tower: text_aux features are that tower applied to text_aux
    torch.testing.assert_close(features['text_aux'],
                               model.clip.encode_text(data['text_aux'], normalize=True))

    losses = model(**data, mode='loss')
    assert {'loss_raw', 'loss_caption', 'logit_scale', 'gate_m_tc', 'gate_m_it', 'gate_m_ic',
            'gate_ws_mean', 'gate_wt_mean', 'gate_wc_mean', 'gate_dcg_fraction'} <= set(losses)
    assert all(torch.isfinite(value).all() for value in losses.values())
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total, losses['loss_raw'] + losses['loss_caption'])
    assert 'gate_ws_mean' in log_vars
    total.backward()
    for name in ('clip.visual.conv1.weight', 'clip.visual.proj', 'clip.token_embedding.weight',
                 'clip.text_projection', 'clip.logit_scale'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name

    with pytest.raises(KeyError, match='text_aux'):
        model(images=data['images'], text=data['text'], mode='loss')


def test_ema_updates_in_training_only_and_checkpoint_round_trip():
    model = tiny_model()
    data = model.data_preprocessor(tiny_batch(), True)
    model.eval()
    model(**data, mode='loss')
    assert buffers(model).tolist() == [1., 1., 1.]  # evaluation: no update

    model.train()
    with torch.no_grad():
        features = model(**data, mode='tensor')
        model(**data, mode='loss')
    means = torch.stack([(features['text'] * features['text_aux']).sum(-1).mean(),
                         (features['image'] * features['text']).sum(-1).mean(),
                         (features['image'] * features['text_aux']).sum(-1).mean()])
    torch.testing.assert_close(buffers(model), 0.99 + 0.01 * means)

    state = model.state_dict()
    assert {'gates.m_tc', 'gates.m_it', 'gates.m_ic'} <= set(state)
    restored = tiny_model()
    assert buffers(restored).tolist() == [1., 1., 1.]
    restored.load_state_dict(state, strict=True)
    torch.testing.assert_close(buffers(restored), buffers(model))


def _sgd_step(model, data):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1.))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    log_vars = model.train_step(data, optim)
    delta = {k: before[k] - v.detach() for k, v in model.named_parameters()}
    return log_vars, delta


def test_feature_cache_accumulation_updates_the_ema_once_per_step():
    data = tiny_batch(batch_size=4)
    single, accumulated = tiny_model(), tiny_model(accumulation_steps=2)
    accumulated.load_state_dict(single.state_dict())
    single.train()
    accumulated.train()
    with torch.no_grad():
        features = single(**single.data_preprocessor(data, True), mode='tensor')
    mean_tc = (features['text'] * features['text_aux']).sum(-1).mean()

    logs_single, delta_single = _sgd_step(single, data)
    logs_acc, delta_acc = _sgd_step(accumulated, data)
    # one EMA step, from the whole batch, in both
    assert accumulated.gates.m_tc.item() == pytest.approx(0.99 + 0.01 * mean_tc.item(), abs=1e-6)
    torch.testing.assert_close(buffers(accumulated), buffers(single), rtol=0, atol=1e-6)
    assert accumulated._step_gate is None and not accumulated._accumulating
    # the same weighted loss and the same summed gradient as the one large batch
    for name in ('loss', 'loss_raw', 'loss_caption', 'gate_ws_mean', 'gate_m_ic'):
        assert logs_acc[name].item() == pytest.approx(logs_single[name].item(), rel=1e-5,
                                                      abs=1e-7), name
    assert logs_acc['loss'].item() == pytest.approx(
        (logs_acc['loss_raw'] + logs_acc['loss_caption']).item(), rel=1e-6)
    for name, delta in delta_single.items():
        torch.testing.assert_close(delta_acc[name], delta, rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------------- recipe schedule
def alip_param_scheduler(max_iters, max_lr=1e-3, pct_start=0.1):
    """The recipe's ``param_scheduler``: MMEngine's OneCycleLR for the learning rate plus two
    cosine momentum pieces for torch OneCycleLR's ``cycle_momentum`` (beta1 0.95 -> 0.85 ->
    0.95; MMEngine's one-cycle scheduler handles ``lr`` only). Needs AdamW betas=(0.95, 0.98)."""
    warm = pct_start * max_iters  # torch's phase boundary, a float
    first_end = math.ceil(warm)
    return [
        dict(type='OneCycleLR', eta_max=max_lr, total_steps=max_iters, pct_start=pct_start,
             by_epoch=False),
        dict(type='CosineAnnealingMomentum', T_max=warm - 1, eta_min=0.85, begin=0,
             end=first_end, by_epoch=False),
        dict(type='CosineAnnealingMomentum', T_max=max_iters - warm, eta_min=0.95,
             begin=first_end - 1, end=max_iters, by_epoch=False),
    ]


@pytest.mark.parametrize('max_iters,beta_tolerance', [(100, 1e-12), (57, 1e-3)])
def test_recipe_schedule_matches_torch_one_cycle(max_iters, beta_tolerance):
    from mmengine.registry import PARAM_SCHEDULERS
    reference_param = torch.nn.Parameter(torch.zeros(1))
    reference = torch.optim.AdamW([reference_param], lr=1e-3, betas=(0.9, 0.98))
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=1e-3,
                                                         total_steps=max_iters, pct_start=0.1)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3,
                                  betas=(0.95, 0.98))
    schedulers = [PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer))
                  for cfg in alip_param_scheduler(max_iters)]
    for step in range(max_iters):
        want, got = reference.param_groups[0], optimizer.param_groups[0]
        assert got['lr'] == pytest.approx(want['lr'], rel=1e-9), step
        assert got['betas'][0] == pytest.approx(want['betas'][0], abs=beta_tolerance), step
        reference.step()
        optimizer.step()
        torch_schedule.step()
        for scheduler in schedulers:
            scheduler.step()


# ---------------------------------------------------------------------- real processes
def _global_features():
    """Fixed L2-normalised (6, 32) image, text and caption features."""
    generator = torch.Generator().manual_seed(0)
    return [torch.nn.functional.normalize(torch.randn(6, 32, generator=generator), dim=-1)
            for _ in range(3)]


def _two_steps(rank, world):
    """Two training-mode ``contrastive_losses`` calls of a tiny ALIPPretrainer on this rank's
    rows of :func:`_global_features`: EMAs and losses of both, local feature gradients of the
    first."""
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ALIPPretrainer', clip=dict(
        embed_dim=32,
        vision_cfg=dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                  feedforward_channels=64), img_size=16, patch_size=8),
        text_cfg=dict(vocab_size=64, context_length=8, width=32, layers=1, heads=2))))
    model.train()
    size = 6 // world
    record = dict(ema=[], loss_raw=[], loss_caption=[], grad={})
    for step in range(2):
        local = {key: value[rank * size:(rank + 1) * size].clone().requires_grad_()
                 for key, value in zip(('image', 'text', 'text_aux'), _global_features())}
        losses = model.contrastive_losses(dict(local, losses={}), torch.tensor(10.))
        record['ema'].append(buffers(model))
        record['loss_raw'].append(losses['loss_raw'].detach())
        record['loss_caption'].append(losses['loss_caption'].detach())
        if step == 0:
            (losses['loss_raw'] + losses['loss_caption']).backward()
            record['grad'] = {key: value.grad for key, value in local.items()}
    return record


def _gloo_worker(rank, world, store, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank,
                            world_size=world)
    try:
        torch.save(_two_steps(rank, world), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process(tmp_path):
    """Two forked CPU processes (gloo) each hold half of a fixed global batch: the gate EMAs
    (two steps), both losses and the local feature gradients equal the one-process values.
    Forked, so the children reuse this process's imports (a fresh interpreter would spend
    ~10 s of CPU importing the stack)."""
    context = multiprocessing.get_context('fork')
    procs = [context.Process(target=_gloo_worker,
                             args=(rank, 2, str(tmp_path / 'store'), str(tmp_path)))
             for rank in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        if proc.is_alive():
            proc.kill()
    assert [proc.exitcode for proc in procs] == [0, 0]

    reference = _two_steps(rank=0, world=1)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pt')
        for step in range(2):
            torch.testing.assert_close(got['ema'][step], reference['ema'][step], rtol=0,
                                       atol=1e-7)
            for name in ('loss_raw', 'loss_caption'):
                torch.testing.assert_close(got[name][step], reference[name][step])
        rows = slice(rank * 3, rank * 3 + 3)
        for key in ('image', 'text', 'text_aux'):
            torch.testing.assert_close(got['grad'][key], reference['grad'][key][rows])
