"""End-to-end tests of the quickstart config and of tools/{train,test}.py, dist_train.sh.

All of them run the real command lines in subprocesses, from a temporary working directory, so
the synthetic data is generated there on first use (``synthetic_data`` in the config):

* ``tools/train.py`` trains the quickstart config and logs metrics; the loss decreases;
* ``tools/test.py`` evaluates its last checkpoint and writes ``--out`` JSON (same metrics as the
  validation at the end of training), ``report.md`` / ``report.json`` and ``--show-dir``
  drawings (image | ground truth | prediction);
* ``--resume``: a run stopped at iteration 20 and resumed to 50 continues at 21 with the learning
  rate, losses and final weights of the uninterrupted run;
* ``tools/dist_train.sh ... 2`` trains with 2 CPU processes (gloo): the ranks see disjoint
  shares that cover the dataset and end with identical weights (``dist_probe.py``).

They are slow (about 3 minutes together on 2 cores) and marked ``slow``, but run by default.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / 'configs' / 'quickstart' / 'lapa-synthetic_farl-tiny.py'
TOOLS = REPO / 'tools'
PROBE_DIR = Path(__file__).resolve().parent  # dist_probe.py
MAX_ITERS = 50  # the quickstart schedule
STOP_AT = 20  # run B stops here and is resumed

pytestmark = pytest.mark.slow

_LAUNCHER_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                 'MASTER_PORT', 'GROUP_RANK', 'TORCHELASTIC_RUN_ID')


def _env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV}
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO), str(PROBE_DIR)] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    env.update(extra or {})
    return env


def run(cmd, cwd, timeout=300, env=None):
    """Run ``cmd``; fail the test with the tail of its output if it exits non-zero."""
    start = time.time()
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=_env(env), timeout=timeout,
                          capture_output=True, text=True)
    proc.seconds = time.time() - start
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))} exited with {proc.returncode}\n--- stdout\n'
                    f'{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}', pytrace=False)
    return proc


def train_cmd(*args):
    return [sys.executable, TOOLS / 'train.py', QUICKSTART, *args]


def read_scalars(work_dir):
    """``vis_data/scalars.json`` records of every run (timestamp folder) in ``work_dir``."""
    records = []
    for stamp in sorted(os.listdir(work_dir)):
        path = Path(work_dir) / stamp / 'vis_data' / 'scalars.json'
        if path.is_file():
            records.append([json.loads(line) for line in path.read_text().splitlines()])
    return records


def train_records(records):
    return {r['iter']: r for r in records if 'loss' in r}


def load_state(path):
    state = torch.load(path, map_location='cpu')  # faceanalysis's allowlist (conftest import)
    return state.get('state_dict', state)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp('quickstart')


@pytest.fixture(scope='module')
def run_a(workspace):
    """The quickstart as documented, logging every iteration (run A of the resume test)."""
    work_dir = workspace / 'A'
    proc = run(train_cmd('--work-dir', work_dir, '--cfg-options',
                         'default_hooks.logger.interval=1'), cwd=workspace)
    return dict(work_dir=work_dir, proc=proc)


def test_train_generates_data_and_logs_metrics(workspace, run_a):
    out = run_a['proc'].stdout + run_a['proc'].stderr
    data_root = workspace / 'data' / 'synthetic' / 'LaPa'
    assert 'does not exist, generating a synthetic lapa dataset' in out
    assert len(os.listdir(data_root / 'train' / 'images')) == 16
    assert sorted(os.listdir(data_root.parent)) == ['LaPa']  # no temporary folder left
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out
    assert 'mIoU:' in out and 'Iter(val)' in out
    work_dir = run_a['work_dir']
    assert (work_dir / f'iter_{MAX_ITERS}.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith(f'iter_{MAX_ITERS}.pth')

    (records, ) = read_scalars(work_dir)
    train = train_records(records)
    assert sorted(train) == list(range(1, MAX_ITERS + 1))
    losses = [train[i]['loss'] for i in sorted(train)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    val = [r for r in records if 'mIoU' in r]
    assert len(val) == 1 and 0 < val[0]['mIoU'] <= 100
    print(f'quickstart: {run_a["proc"].seconds:.1f} s, loss {first:.3f} -> {last:.3f}, '
          f'val {val[0]}')


def test_test_tool_writes_metrics_json(workspace, run_a):
    out_json = workspace / 'T' / 'metrics.json'
    show_dir = workspace / 'T' / 'show'
    proc = run([sys.executable, TOOLS / 'test.py', QUICKSTART,
                run_a['work_dir'] / f'iter_{MAX_ITERS}.pth', '--work-dir', workspace / 'T',
                '--out', out_json, '--show-dir', show_dir], cwd=workspace)
    assert 'generating' not in proc.stdout  # the data exists already
    metrics = json.loads(out_json.read_text())
    for key in ('mean_f1', 'mIoU', 'aAcc', 'f1/skin', 'f1/hair'):  # FaceParsingMetric
        assert isinstance(metrics[key], float) and 0 <= metrics[key] <= 100, key
    # the same weights on the same split as the validation at the end of training
    (records, ) = read_scalars(run_a['work_dir'])
    val = [r for r in records if 'mIoU' in r][-1]
    assert metrics['mIoU'] == pytest.approx(val['mIoU'], abs=1e-6)
    assert metrics['mean_f1'] == pytest.approx(val['mean_f1'], abs=1e-6)
    report = json.loads((workspace / 'T' / 'report.json').read_text())
    assert report['metrics']['mean_f1'] == pytest.approx(metrics['mean_f1'])
    assert (workspace / 'T' / 'report.md').is_file()
    drawn = [f for _, _, files in os.walk(show_dir) for f in files if f.endswith('.png')]
    assert len(drawn) == 4, drawn  # one per test image


def test_resume_continues_schedule(workspace, run_a):
    work_dir = workspace / 'B'
    common = ['--work-dir', work_dir]
    run(train_cmd(*common, '--cfg-options', f'train_cfg.max_iters={STOP_AT}',
                  'default_hooks.logger.interval=1'), cwd=workspace)
    assert (work_dir / f'iter_{STOP_AT}.pth').is_file()
    resumed = run(train_cmd(*common, '--resume', '--cfg-options',
                            'default_hooks.logger.interval=1'), cwd=workspace)
    out = resumed.stdout + resumed.stderr
    assert f'resumed epoch: 0, iter: {STOP_AT}' in out
    assert f'Advance dataloader {STOP_AT} steps' in out

    (records_a, ) = read_scalars(run_a['work_dir'])
    first_b, second_b = read_scalars(work_dir)
    a, b1, b2 = map(train_records, (records_a, first_b, second_b))
    assert sorted(b1) == list(range(1, STOP_AT + 1))
    assert sorted(b2) == list(range(STOP_AT + 1, MAX_ITERS + 1))  # B resumes at k + 1
    for i in range(1, MAX_ITERS + 1):
        b = b1.get(i) or b2[i]
        assert b['lr'] == pytest.approx(a[i]['lr'], rel=1e-9, abs=1e-12), i
        assert b['loss'] == pytest.approx(a[i]['loss'], rel=1e-3, abs=1e-4), i

    state_a = load_state(run_a['work_dir'] / f'iter_{MAX_ITERS}.pth')
    state_b = load_state(work_dir / f'iter_{MAX_ITERS}.pth')
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        torch.testing.assert_close(state_b[key], state_a[key], rtol=1e-4, atol=1e-5, msg=key)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_cpu_ranks(tmp_path):
    """2 processes over gloo: disjoint data shares covering the dataset, identical weights."""
    iters = 4
    work_dir = tmp_path / 'D'
    proc = run(['bash', TOOLS / 'dist_train.sh', QUICKSTART, 2, '--work-dir', work_dir,
                '--cfg-options', f'train_cfg.max_iters={iters}',
                'custom_imports.imports=[faceanalysis.models,faceanalysis.datasets,'
                'faceanalysis.evaluation,dist_probe]',
                'default_hooks.probe.type=DistProbeHook'],
               cwd=tmp_path, timeout=300,
               env=dict(PYTHON=sys.executable, PORT=str(_free_port()), OMP_NUM_THREADS='1'))
    out = proc.stdout + proc.stderr
    assert 'Iter(val)' in out and 'mIoU' in out
    # both ranks may have generated the data concurrently: one copy, no leftovers
    assert sorted(os.listdir(tmp_path / 'data' / 'synthetic')) == ['LaPa']

    probes = [json.loads((work_dir / 'probe' / f'rank{r}.json').read_text()) for r in (0, 1)]
    all_names = sorted(os.listdir(tmp_path / 'data' / 'synthetic' / 'LaPa' / 'train' / 'images'))
    assert len(all_names) == probes[0]['dataset_size'] == 16
    shares = []
    for rank, probe in enumerate(probes):
        assert probe['rank'] == rank and probe['world_size'] == 2
        assert probe['sampler'] == dict(type='InfiniteSampler', rank=rank, world_size=2)
        assert len(probe['batches']) == iters
        assert all(len(batch) == 4 for batch in probe['batches'])
        consumed = [name for batch in probe['batches'] for name in batch]
        shares.append(consumed[:len(all_names) // 2])  # one pass over the data set
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == all_names

    states = [torch.load(work_dir / 'probe' / f'rank{r}.pth', map_location='cpu')
              for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:  # parameters by DDP, BN statistics by SyncBuffersHook
        torch.testing.assert_close(states[1][key], states[0][key], rtol=0, atol=1e-7, msg=key)
    # rank 0's checkpoint holds the common parameters (it is written before the validation
    # that averages the BN statistics, so those are rank 0's own)
    checkpoint = load_state(work_dir / f'iter_{iters}.pth')
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    params = [key for key in states[0] if not key.endswith(buffers)]
    assert params and checkpoint.keys() == states[0].keys()
    for key in params:
        torch.testing.assert_close(checkpoint[key], states[0][key], rtol=0, atol=0, msg=key)
