"""ClipContrastiveLoss: equal to open_clip's ClipLoss, exact across 2 gloo ranks."""
import json

import pytest
import torch
import torch.nn.functional as F

from faceanalysis.models.losses import ClipContrastiveLoss


def _features(batch=6, dims=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, dims, generator=generator), dim=-1)
    text = F.normalize(torch.randn(batch, dims, generator=generator), dim=-1)
    return image, text


@pytest.mark.parametrize('local_loss,gather_with_grad', [(True, True), (False, False),
                                                         (False, True)])
def test_equals_open_clip_clip_loss(local_loss, gather_with_grad):
    from open_clip.loss import ClipLoss
    image, text = _features()
    scale = torch.tensor(14.3)
    ours = ClipContrastiveLoss(local_loss=local_loss, gather_with_grad=gather_with_grad)
    reference = ClipLoss(local_loss=local_loss, gather_with_grad=gather_with_grad)
    assert torch.allclose(ours(image, text, scale), reference(image, text, scale), atol=1e-6)


def test_hand_computed_two_pairs():
    image = torch.tensor([[1., 0.], [0., 1.]])
    text = torch.tensor([[1., 0.], [0.6, 0.8]])
    scale = torch.tensor(2.)
    logits = scale * image @ text.t()  # [[2, 1.2], [0, 1.6]]
    row = -(torch.log_softmax(logits, 1).diagonal()).mean()
    col = -(torch.log_softmax(logits.t(), 1).diagonal()).mean()
    expected = (row + col) / 2
    assert torch.allclose(ClipContrastiveLoss()(image, text, scale), expected)


def test_biased_mode_rejected():
    with pytest.raises(ValueError, match='biased'):
        ClipContrastiveLoss(local_loss=True, gather_with_grad=False)


def test_shape_mismatch_raises():
    image, text = _features()
    with pytest.raises(ValueError, match='same'):
        ClipContrastiveLoss()(image, text[:3], torch.tensor(1.))


_DIST_CHILD = r'''
import json, os, sys, tempfile
import torch, torch.distributed as dist, torch.multiprocessing as mp
import torch.nn.functional as F
import faceanalysis
from faceanalysis.models.losses import ClipContrastiveLoss

WORLD, PER_RANK, DIMS = 2, 3, 8
MODES = [(True, True), (False, False), (False, True)]

def make():
    torch.manual_seed(0)
    encoder = torch.nn.Linear(5, DIMS)
    scale = torch.nn.Parameter(torch.tensor(2.5))
    data = torch.randn(WORLD * PER_RANK, 2, 5)
    return encoder, scale, data

def grads(encoder, scale, data, mode, rank, world):
    encoder.zero_grad(); scale.grad = None
    rows = data[rank * PER_RANK:(rank + 1) * PER_RANK] if world > 1 else data
    image = F.normalize(encoder(rows[:, 0]), dim=-1)
    text = F.normalize(encoder(rows[:, 1]), dim=-1)
    loss = ClipContrastiveLoss(*mode)(image, text, scale.exp())
    loss.backward()
    out = [p.grad.clone() for p in encoder.parameters()] + [scale.grad.clone()]
    if world > 1:  # what DDP does: average over ranks
        for g in out:
            dist.all_reduce(g); g /= world
    return loss.detach(), out

def worker(rank, store_path, out_path):
    dist.init_process_group('gloo', init_method='file://' + store_path, rank=rank,
                            world_size=WORLD)
    encoder, scale, data = make()
    result = {}
    for mode in MODES:
        loss, g = grads(encoder, scale, data, mode, rank, WORLD)
        losses = [torch.zeros(()) for _ in range(WORLD)]
        dist.all_gather(losses, loss)
        result[str(mode)] = dict(loss=float(sum(losses) / WORLD), grads=[x.tolist() for x in g])
    if rank == 0:
        json.dump(result, open(out_path, 'w'))
    dist.destroy_process_group()

if __name__ == '__main__':
    out_path = sys.argv[1]
    store = tempfile.mktemp()
    mp.start_processes(worker, args=(store, out_path), nprocs=WORLD, start_method='fork')
    encoder, scale, data = make()
    single = {}
    for mode in MODES:
        loss, g = grads(encoder, scale, data, mode, 0, 1)
        single[str(mode)] = dict(loss=float(loss), grads=[x.tolist() for x in g])
    json.dump(single, open(out_path + '.single', 'w'))
'''


def test_two_gloo_ranks_equal_one_process_on_concatenated_batch(tmp_path, run_python):
    script = tmp_path / 'child.py'
    script.write_text(_DIST_CHILD)
    out = tmp_path / 'dist.json'
    run_python(f'import runpy, sys; sys.argv = ["child", {str(out)!r}]; '
               f'runpy.run_path({str(script)!r}, run_name="__main__")', timeout=120)
    dist_result = json.loads(out.read_text())
    single = json.loads((tmp_path / 'dist.json.single').read_text())
    for mode, record in dist_result.items():
        reference = single[mode]
        # The mean of the ranks' losses is the loss of the concatenated batch.
        assert record['loss'] == pytest.approx(reference['loss'], abs=1e-6), mode
        # Exact modes give the full-batch gradient after DDP's averaging. In ALIP's mode every
        # rank builds G x G but only its slice carries gradient: the encoder's averaged
        # gradient is the full one / world (Adam ignores the scale); the temperature, which
        # every rank sees whole, gets the full gradient.
        factor = 2. if mode == str((False, False)) else 1.
        *encoder_grads, scale_grad = record['grads']
        *expected_encoder, expected_scale = reference['grads']
        for got, expected in zip(encoder_grads, expected_encoder):
            assert torch.allclose(torch.tensor(got) * factor, torch.tensor(expected),
                                  atol=1e-6), mode
        assert scale_grad == pytest.approx(expected_scale, abs=1e-6), mode
