"""MoCoV3Loss against a hand-written CE * 2T, locally and with keys gathered over 2 gloo ranks."""
import multiprocessing
import socket

import pytest
import torch

from faceanalysis.models.losses.moco_v3_loss import MoCoV3Loss


def direct(queries, keys, temperature, offset=0):
    """mean_i -log softmax(q̂_i · k̂ᵀ / T)[i + offset] * 2T, written out."""
    q = queries / queries.norm(dim=1, keepdim=True)
    k = keys / keys.norm(dim=1, keepdim=True)
    logits = q @ k.t() / temperature
    rows = torch.arange(q.shape[0])
    log_prob = logits[rows, rows + offset] - logits.exp().sum(dim=1).log()
    return -log_prob.mean() * 2 * temperature


def test_matches_direct_formula():
    generator = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    loss = MoCoV3Loss(temperature=0.2)(queries, keys)
    torch.testing.assert_close(loss, direct(queries, keys, 0.2), rtol=1e-5, atol=1e-6)
    # Unnormalised inputs: the loss only sees directions.
    torch.testing.assert_close(MoCoV3Loss(0.2)(3 * queries, 0.5 * keys), loss)


def test_keys_get_no_gradient_and_bad_inputs_raise():
    queries = torch.randn(4, 8, requires_grad=True)
    keys = torch.randn(4, 8, requires_grad=True)
    MoCoV3Loss()(queries, keys).backward()
    assert queries.grad is not None and keys.grad is None
    with pytest.raises(ValueError, match='same'):
        MoCoV3Loss()(queries, keys[:3])
    with pytest.raises(ValueError, match='temperature'):
        MoCoV3Loss(temperature=0.)


def _rank_worker(rank, port, queue):
    """One gloo rank: its loss must use both ranks' keys and the labels arange(B) + B * rank."""
    import torch.distributed as dist
    torch.set_num_threads(1)
    try:
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                world_size=2)
        generator = torch.Generator().manual_seed(0)
        queries = [torch.randn(3, 8, generator=generator) for _ in range(2)]
        keys = [torch.randn(3, 8, generator=generator) for _ in range(2)]
        loss = MoCoV3Loss(temperature=0.2)(queries[rank], keys[rank])
        expected = direct(queries[rank], torch.cat(keys), 0.2, offset=3 * rank)
        matches = bool(torch.allclose(loss, expected, rtol=1e-5, atol=1e-6))
        try:  # unequal per-rank batches: both ranks must refuse, not mislabel
            MoCoV3Loss()(queries[rank][:3 - rank], keys[rank][:3 - rank])
            refused = False
        except ValueError as error:
            refused = 'drop_last' in str(error)
        dist.destroy_process_group()
        queue.put((rank, matches, refused, ''))
    except Exception as error:  # report instead of hanging the parent
        queue.put((rank, False, False, repr(error)))


def test_keys_gathered_across_two_ranks():
    # fork from this process: no second interpreter start and import (slow on a busy machine)
    context = multiprocessing.get_context('fork')
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    queue = context.Queue()
    procs = [context.Process(target=_rank_worker, args=(rank, port, queue)) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    try:
        results = sorted(queue.get(timeout=60) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    assert results == [(0, True, True, ''), (1, True, True, '')], results
