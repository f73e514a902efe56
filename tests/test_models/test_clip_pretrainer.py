"""CLIPPretrainer: FLIP token masking, unmasked phase switch, temperature, accumulation."""
import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper

import faceanalysis.models  # noqa: F401  (registers FaceCLIP, FaceViT)
import faceanalysis.models.data_preprocessors  # noqa: F401
from faceanalysis.engine import UnmaskedTuningHook
from faceanalysis.models.backbones import FaceViT
from faceanalysis.models.pretrainers import CLIPPretrainer, split_batch

TINY_CLIP = dict(
    embed_dim=16,
    vision_cfg=dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
                    img_size=32, patch_size=8),
    text_cfg=dict(width=32, layers=1, heads=2, context_length=12))
NUM_PATCHES = 16


def _batch(size=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(1, 400, (size, 12), generator=generator)
    text[:, -1] = 49407  # EOT (largest id) for argmax pooling
    return dict(img=torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8,
                                  generator=generator), text=text)


def _model(**kwargs):
    torch.manual_seed(0)
    return CLIPPretrainer(clip=copy.deepcopy(TINY_CLIP), **kwargs)


def _first_block_lengths(model):
    lengths = []
    block = model.clip.visual.transformer.resblocks[0]
    block.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape))
    return lengths


@pytest.mark.parametrize('ratio,kept', [(0.5, 8), (0.75, 4)])
def test_token_drop_keeps_cls_and_exact_count(ratio, kept):
    model = _model(token_drop_ratio=ratio).train()
    lengths = _first_block_lengths(model)
    data = model.data_preprocessor(_batch(), True)
    model(**data, mode='loss')
    assert lengths[0] == (6, 1 + kept, 32)

    # CLS stays first, and every sample keeps `kept` distinct patches of its own.
    tokens = torch.randn(6, 1 + NUM_PATCHES, 4)
    tokens[:, :, 0] = torch.arange(1 + NUM_PATCHES).float()  # position id in channel 0
    dropped = FaceViT.drop_tokens(tokens, ratio)
    assert dropped.shape == (6, 1 + kept, 4)
    assert torch.equal(dropped[:, 0], tokens[:, 0])
    ids = dropped[:, 1:, 0].long()
    for row in ids:
        assert len(set(row.tolist())) == kept and row.min() >= 1
    assert len({tuple(row.tolist()) for row in ids}) > 1  # masks differ between samples


def test_no_token_drop_in_eval_and_predict():
    model = _model(token_drop_ratio=0.5).eval()
    lengths = _first_block_lengths(model)
    data = model.data_preprocessor(_batch(), False)
    samples = model(**data, mode='predict')
    assert lengths[0][1] == 1 + NUM_PATCHES
    assert len(samples) == 6
    assert samples[0]['image_embedding'].shape == (16, )
    assert torch.linalg.norm(samples[0]['text_embedding']) == pytest.approx(1, abs=1e-5)


def test_unmasked_tuning_hook_switches_phase_and_resumes():
    model = _model(token_drop_ratio=0.5).train()
    hook = UnmaskedTuningHook(begin=3)
    logs = []
    runner = SimpleNamespace(model=model, iter=0, logger=SimpleNamespace(info=logs.append))
    ratios = []
    for iteration in range(5):
        runner.iter = iteration
        hook.before_train_iter(runner, iteration)
        ratios.append(model.token_drop_ratio)
    assert ratios == [0.5, 0.5, 0.5, 0., 0.]
    assert len(logs) == 1 and 'unmasked' in logs[0]
    lengths = _first_block_lengths(model)
    model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert lengths[0][1] == 1 + NUM_PATCHES

    # A run resumed inside the masked phase masks again; one resumed after `begin` does not.
    fresh = _model(token_drop_ratio=0.5)
    resumed = UnmaskedTuningHook(begin=3)
    runner = SimpleNamespace(model=fresh, iter=4, logger=SimpleNamespace(info=logs.append))
    resumed.before_train_iter(runner, 4)
    assert fresh.token_drop_ratio == 0.


@pytest.mark.parametrize('mode', ['forward', 'param', None])
def test_logit_scale_clamp_modes(mode):
    model = _model(logit_scale_clamp=mode).train()
    with torch.no_grad():
        model.clip.logit_scale.fill_(6.)  # exp(6) = 403 > 100
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    if mode is None:
        assert losses['logit_scale'] == pytest.approx(math.exp(6.), rel=1e-5)
        assert model.clip.logit_scale.item() == 6.
    else:
        assert losses['logit_scale'] == pytest.approx(100., rel=1e-5)
        assert model.clip.logit_scale.item() == (6. if mode == 'forward'
                                                 else pytest.approx(math.log(100)))


def test_split_batch_bounds_and_lists():
    batch = dict(images=torch.arange(5), key=list('abcde'), scalar=3)
    parts = split_batch(batch, 2)
    assert [p['images'].tolist() for p in parts] == [[0, 1], [2, 3, 4]]
    assert [p['key'] for p in parts] == [['a', 'b'], ['c', 'd', 'e']]
    assert parts[1]['scalar'] == 3
    with pytest.raises(ValueError, match='exceeds'):
        split_batch(batch, 6)


def _step(model, data, lr=0.5):
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    log_vars = model.train_step(data, wrapper)
    return log_vars, {name: p.detach().clone() for name, p in model.named_parameters()}


def test_feature_cache_accumulation_equals_one_big_batch():
    data = _batch(size=6)
    full_vars, full = _step(_model().train(), data)
    accumulated_vars, accumulated = _step(_model(accumulation_steps=3).train(), data)
    assert accumulated_vars['loss_contrastive'].item() == pytest.approx(
        full_vars['loss_contrastive'].item(), abs=1e-6)
    for name, value in full.items():
        assert torch.allclose(accumulated[name], value, atol=1e-6), name


def test_accumulation_replays_token_drop_randomness():
    model = _model(token_drop_ratio=0.5, accumulation_steps=2).train()
    seen = []
    original = model.extract_features

    def spy(images, **batch):
        features = original(images, **batch)
        seen.append(features['image'].detach().clone())
        return features

    model.extract_features = spy
    _step(model, _batch(size=4), lr=0.)
    assert len(seen) == 4  # 2 cached passes, then 2 gradient passes
    assert torch.allclose(seen[0], seen[2], atol=1e-6)
    assert torch.allclose(seen[1], seen[3], atol=1e-6)


def test_accumulation_refuses_naive_accumulation_too():
    model = _model(accumulation_steps=2).train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    with pytest.raises(ValueError, match='accumulative_counts'):
        model.train_step(_batch(), wrapper)


_DDP_CHILD = r'''
import copy, json, sys, tempfile
import torch, torch.distributed as dist, torch.multiprocessing as mp
from mmengine.optim import OptimWrapper
import faceanalysis, faceanalysis.models, faceanalysis.models.data_preprocessors
from faceanalysis.engine import PretrainDistributedDataParallel
from faceanalysis.models.pretrainers import CLIPPretrainer

TINY = json.loads(sys.argv[2])

def batch():
    g = torch.Generator().manual_seed(1)
    text = torch.randint(1, 400, (8, 12), generator=g); text[:, -1] = 49407
    return dict(img=torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g),
                text=text)

def model(steps):
    torch.manual_seed(0)
    return CLIPPretrainer(clip=copy.deepcopy(TINY), accumulation_steps=steps).train()

def worker(rank, store, out):
    dist.init_process_group('gloo', init_method='file://' + store, rank=rank, world_size=2)
    ddp = PretrainDistributedDataParallel(model(2), device_ids=None)
    data = {k: v[rank * 4:(rank + 1) * 4] for k, v in batch().items()}
    ddp.train_step(data, OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=0.5)))
    if rank == 0:
        torch.save({k: v.detach() for k, v in ddp.module.named_parameters()}, out)
    dist.destroy_process_group()

if __name__ == '__main__':
    out = sys.argv[1]
    mp.start_processes(worker, args=(tempfile.mktemp(), out), nprocs=2, start_method='fork')
    single = model(1)
    single.train_step(batch(), OptimWrapper(torch.optim.SGD(single.parameters(), lr=0.5)))
    torch.save({k: v.detach() for k, v in single.named_parameters()}, out + '.single')
'''


def test_ddp_feature_cache_accumulation_equals_single_process(tmp_path, run_python):
    """2 gloo ranks x 2 micro-batches of 2 == one process with the batch of 8 (exact)."""
    script = tmp_path / 'child.py'
    script.write_text(_DDP_CHILD)
    out = tmp_path / 'ddp.pth'
    run_python(f'import runpy, sys; sys.argv = ["child", {str(out)!r}, '
               f'{json.dumps(json.dumps(TINY_CLIP))}]; '
               f'runpy.run_path({str(script)!r}, run_name="__main__")', timeout=180)
    ddp = torch.load(out)
    single = torch.load(str(out) + '.single')
    for name, value in single.items():
        assert torch.allclose(ddp[name], value, atol=2e-6), name
