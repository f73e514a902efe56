"""Tests of every shim in :mod:`faceanalysis.compat` and of the registry mirroring.

Behaviour that depends on import order or on the process environment runs in two fresh
interpreters, started together before the first test of this module (see ``_children``) and
checked by the tests at the end; everything else runs in-process. The file takes about half a
minute on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.metadata
import json
import os
import os.path as osp
import pickle
import pickletools
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import DataLoader, Dataset

from faceanalysis import compat

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_FARL = dict(type='FaRL', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                        feedforward_channels=64), img_size=32, patch_size=8)


# ---------------------------------------------------------------------------------------------
# Fresh interpreters. Import-order and environment-dependent behaviour is checked in child
# processes. The children of this module start together, before its first test, and run while
# the in-process tests do; each reports its steps separately, so one broken step fails only the
# tests that look at it.
# ---------------------------------------------------------------------------------------------
_STEP_HELPER = '''
import json, os, sys, traceback
results = {}
def step(name, fn):
    try:
        results[name] = dict(ok=True, value=fn())
    except BaseException as exc:
        results[name] = dict(ok=False, error=f'{type(exc).__name__}: {exc}',
                             traceback=traceback.format_exc())
def report():
    print('RESULT ' + json.dumps(results), flush=True)
    sys.stderr.flush()
    os._exit(0)  # skip the slow interpreter teardown (torch, gloo)
'''


def _fresh_script(tmp_dir: Path):
    """``import faceanalysis`` first, then mmseg/mmpose, the registry, ops and mmpose.apis."""
    return _STEP_HELPER + f'''
import importlib.util
# A compiled mmcv (docs/install.md) has a real extension: the placeholder checks then skip.
results['real_ext'] = dict(ok=True, value=importlib.util.find_spec('mmcv._ext') is not None)
import faceanalysis
watched = ('mmseg.models', 'mmpose.models', 'mmpose.apis', 'faceanalysis.models',
           'faceanalysis.registry', 'mmcv.ops')
results['preloaded'] = dict(ok=True, value=[m for m in watched if m in sys.modules])

def try_register(name):
    import mmpose.registry, mmseg.registry
    from faceanalysis.registry import MODELS
    class Clash:
        pass
    try:
        MODELS.register_module(name=name, module=Clash)
    except KeyError as exc:
        registries = dict(faceanalysis=MODELS, mmseg=mmseg.registry.MODELS,
                          mmpose=mmpose.registry.MODELS)
        return dict(error=str(exc), left_in=[scope for scope, registry in registries.items()
                                             if registry.module_dict.get(name) is Clash])
    return None

def collisions():  # before mmseg.models / mmpose.models were imported by anyone
    before = [m for m in ('mmseg.models', 'mmpose.models') if m in sys.modules]
    return dict(before=before, UPerHead=try_register('UPerHead'),
                HeatmapHead=try_register('HeatmapHead'))
step('collisions', collisions)

def import_stack():
    import mmseg.models, mmpose.models  # noqa: F401
    return type(sys.modules['mmcv._ext']).__name__
step('import_stack', import_stack)

def lazy_build():
    from faceanalysis.registry import MODELS
    before = 'faceanalysis.models' in sys.modules
    import torch
    model = MODELS.build({TINY_FARL!r})
    feats = model(torch.rand(1, 3, 32, 32))
    cls = type(model)
    return dict(imported_before=before, cls=f'{{cls.__module__}}.{{cls.__qualname__}}',
                shapes=[list(f.shape) for f in feats])
step('lazy_build', lazy_build)

def mmpose_apis():
    import mmpose.apis  # noqa: F401
    return hasattr(mmpose.apis, 'inference_topdown')
step('mmpose_apis', mmpose_apis)

def nms():
    import torch
    import mmcv.ops
    try:
        mmcv.ops.nms(torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1.]), 0.5)
    except Exception as exc:
        return dict(type=type(exc).__name__, module=type(exc).__module__, message=str(exc))
    return None
step('nms', nms)

def build_in(scope):
    import importlib
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    registry = importlib.import_module(scope + '.registry').MODELS
    cls = type(registry.build({TINY_FARL!r}))
    return f'{{cls.__module__}}.{{cls.__qualname__}}'
step('mmseg_scope', lambda: build_in('mmseg'))
step('mmpose_scope', lambda: build_in('mmpose'))

def segmentor():
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(dict(
        type='EncoderDecoder', backbone={TINY_FARL!r},
        decode_head=dict(type='FCNHead', in_channels=32, channels=8, num_convs=1, num_classes=3,
                         norm_cfg=dict(type='BN'))))
    out = model(torch.rand(1, 3, 32, 32), mode='tensor')
    return dict(backbone=type(model.backbone).__name__, shape=list(out.shape))
step('segmentor', segmentor)
step('own_collision', lambda: try_register('FaRL'))
report()
''', {}


def _sync_bn_cfg() -> dict:
    return dict(
        model=dict(type='EncoderDecoder', backbone=dict(norm_cfg=dict(type='SyncBN')),
                   neck=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                   decode_head=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                   auxiliary_head=[dict(norm_cfg=dict(type='MMSyncBN')),
                                   dict(norm_cfg=dict(type='GN', num_groups=2))]),
        env_cfg=dict(dist_cfg=dict(backend='nccl')))


def _launched_script(tmp_dir: Path):
    """Started like ``torchrun`` (world size 1) without CUDA, with a compiled ``mmcv._ext``.

    The compiled extension is simulated by a module put into ``sys.modules`` before
    ``import faceanalysis``; both situations share one interpreter to save its start-up time.
    """
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES='')
    return _STEP_HELPER + '''
import types
fake = types.ModuleType('mmcv._ext')
calls = []
def _op(name):
    def op(*args, **kwargs):
        calls.append(name)
        import torch
        return torch.tensor([0])
    return op
def _ext_getattr(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return _op(name)
fake.__getattr__ = _ext_getattr
sys.modules['mmcv._ext'] = fake
import faceanalysis
from faceanalysis import compat
results['kept'] = dict(ok=True, value=sys.modules['mmcv._ext'] is fake)
results['again'] = dict(ok=True, value=compat.install_mmcv_ext_placeholder())
def use_op():
    import torch
    import mmcv.ops
    dets, keep = mmcv.ops.nms(torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1.]), 0.5)
    return dict(calls=calls, keep=keep.tolist())
step('use_op', use_op)
''' + f'''
import torch
import torch.distributed as dist
from mmengine.config import Config
from faceanalysis.compat import setup_cpu_distributed
cfg = Config({_sync_bn_cfg()!r})
def setup():
    return [setup_cpu_distributed(cfg, 'pytorch'), setup_cpu_distributed(cfg, 'pytorch')]
step('setup', setup)
bare = Config(dict(model=dict(type='EncoderDecoder')))  # no env_cfg / wrapper in the config
def setup_bare():
    setup_cpu_distributed(bare, 'pytorch')
    return dict(backend=bare.env_cfg.dist_cfg.backend, wrapper=dict(bare.model_wrapper_cfg))
step('setup_bare', setup_bare)
def state():
    model = cfg.model
    t = torch.ones(1)
    dist.all_reduce(t)
    return dict(initialized=dist.is_initialized(), backend=dist.get_backend(),
                world_size=dist.get_world_size(), all_reduce=t.item(),
                cfg_backend=cfg.env_cfg.dist_cfg.backend,
                wrapper=dict(cfg.model_wrapper_cfg),
                norms=[model.backbone.norm_cfg.type, model.neck.norm_cfg.type,
                       model.decode_head.norm_cfg.type,
                       model.auxiliary_head[0].norm_cfg.type,
                       model.auxiliary_head[1].norm_cfg.type],
                requires_grad=model.decode_head.norm_cfg.requires_grad)
step('state', state)
def wrap():
    # Runner.wrap_model itself (a full Runner adds seconds of environment collection).
    import types
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner
    runner = types.SimpleNamespace(distributed=True, cfg=Config(),
                                   logger=MMLogger.get_instance('test_compat'))
    model = Runner.wrap_model(runner, cfg.model_wrapper_cfg, torch.nn.Linear(2, 1))
    out = model(torch.ones(1, 2))
    out.sum().backward()
    return dict(wrapper=type(model).__name__, device_ids=model.device_ids,
                device=str(next(model.parameters()).device))
step('wrap', wrap)
dist.destroy_process_group()
report()
''', env


_CHILD_SCRIPTS = dict(fresh_process=_fresh_script, launched_process=_launched_script)


# Inherited variables that would make a child distributed by accident.
_LAUNCHER_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                 'MASTER_PORT', 'GROUP_RANK', 'TORCHELASTIC_RUN_ID')


class _Child:
    """A child interpreter running a script; :meth:`result` waits for its ``RESULT`` line."""

    def __init__(self, code: str, cwd: Path, env: dict) -> None:
        child_env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV}
        # this checkout first, as pytest's `pythonpath = .` does for the tests themselves
        child_env['PYTHONPATH'] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')]))
        child_env.update(env)
        self.proc = subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)],
                                     cwd=str(cwd), env=child_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._results = None
        self._failure = None

    def result(self, timeout: float = 300) -> dict:
        if self._results is None and self._failure is None:
            try:
                out, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
            for line in out.splitlines():
                if line.startswith('RESULT '):
                    self._results = json.loads(line[len('RESULT '):])
            if self._results is None:
                self._failure = (f'child exited with {self.proc.returncode} without a result'
                                 f'\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-8000:]}')
        if self._failure is not None:
            pytest.fail(self._failure, pytrace=False)
        return self._results

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope='module', autouse=True)
def _children(request, tmp_path_factory):
    """Start the child processes that this module's selected tests need, all at once."""
    wanted = set()
    for item in request.session.items:
        if getattr(item, 'module', None) is request.module:
            wanted.update(set(getattr(item, 'fixturenames', ())) & set(_CHILD_SCRIPTS))
    children = {}
    for name in _CHILD_SCRIPTS:  # heaviest first
        if name in wanted:
            code, env = _CHILD_SCRIPTS[name](tmp_path_factory.mktemp(name))
            children[name] = _Child(code, tmp_path_factory.getbasetemp(), env)
    yield children
    for child in children.values():
        child.close()


@pytest.fixture(scope='module')
def fresh_process(_children) -> dict:
    return _children['fresh_process'].result()


@pytest.fixture(scope='module')
def launched_process(_children) -> dict:
    return _children['launched_process'].result()


def _value(results: dict, name: str):
    result = results[name]
    assert result['ok'], f"step {name!r} failed: {result['error']}\n{result['traceback']}"
    return result['value']


# ---------------------------------------------------------------------------------------------
# mmcv-lite placeholder (in-process; the import-order checks are at the end of the file)
# ---------------------------------------------------------------------------------------------
def test_placeholder_install_logic(monkeypatch):
    """In-process: installs only when no extension exists, is idempotent, and keeps real ones."""
    import importlib.util
    monkeypatch.delitem(sys.modules, 'mmcv._ext', raising=False)
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == 'mmcv._ext' else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, 'find_spec', find_spec)
    assert compat.install_mmcv_ext_placeholder() is True
    placeholder = sys.modules['mmcv._ext']
    assert compat.install_mmcv_ext_placeholder() is True
    assert sys.modules['mmcv._ext'] is placeholder
    with pytest.raises(compat.CompiledOpUnavailable, match="'roi_align'"):
        placeholder.roi_align()
    with pytest.raises(AttributeError):
        placeholder.__wrapped__  # dunder lookups must not pretend to exist

    # An importable compiled extension wins: nothing is installed.
    monkeypatch.delitem(sys.modules, 'mmcv._ext')
    spec = importlib.machinery.ModuleSpec('mmcv._ext', loader=None, origin='/x/_ext.so')
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a, **k: spec if name == 'mmcv._ext' else None)
    assert compat.install_mmcv_ext_placeholder() is False
    assert 'mmcv._ext' not in sys.modules


# ---------------------------------------------------------------------------------------------
# pkg_resources-free package lookup
# ---------------------------------------------------------------------------------------------
def _mmcv_distribution() -> str:
    try:
        importlib.metadata.distribution('mmcv-lite')
        return 'mmcv-lite'
    except importlib.metadata.PackageNotFoundError:
        return 'mmcv'  # the compiled build


@pytest.mark.parametrize('package, module', [('mmsegmentation', 'mmseg'), ('mmpose', 'mmpose'),
                                             (_mmcv_distribution(), 'mmcv'),
                                             ('faceanalysis', 'faceanalysis')])
def test_package_lookup(package, module):
    imported = importlib.import_module(module)
    assert compat.is_installed(package)
    assert compat.package2module(package) == module
    assert osp.realpath(compat.get_installed_path(package)) == \
        osp.realpath(osp.dirname(imported.__file__))


def test_package_lookup_editable_install_points_at_checkout():
    import faceanalysis
    if Path(faceanalysis.__file__).resolve().parent != REPO_ROOT / 'faceanalysis':
        pytest.skip('faceanalysis is not imported from this checkout (not an editable install)')
    assert osp.realpath(compat.get_installed_path('faceanalysis')) == \
        osp.realpath(REPO_ROOT / 'faceanalysis')
    assert compat.package2module('faceanalysis') == 'faceanalysis'


def test_package_lookup_missing_package():
    assert not compat.is_installed('no-such-package-faceanalysis-test')
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        compat.get_installed_path('no-such-package-faceanalysis-test')
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        compat.package2module('no-such-package-faceanalysis-test')


def test_mmengine_uses_patched_lookup():
    import importlib.util

    import mmengine.config.config as config_module
    import mmengine.utils.package_utils as package_utils
    if importlib.util.find_spec('pkg_resources') is not None:
        pytest.skip('pkg_resources is importable: mmengine keeps its own lookup')
    assert package_utils.get_installed_path is compat.get_installed_path
    assert config_module.get_installed_path is compat.get_installed_path
    assert package_utils.is_installed is compat.is_installed
    assert package_utils.package2module is compat.package2module


def test_config_inherits_from_installed_mmseg_and_mmpose(tmp_path):
    from mmengine.config import Config
    seg = tmp_path / 'seg.py'
    seg.write_text("_base_ = 'mmseg::_base_/models/upernet_vit-b16_ln_mln.py'\n"
                   "model = dict(decode_head=dict(num_classes=11))\n")
    cfg = Config.fromfile(str(seg))
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.backbone.type == 'VisionTransformer'
    assert cfg.model.decode_head.num_classes == 11
    pose = tmp_path / 'pose.py'
    pose.write_text("_base_ = 'mmpose::face_2d_keypoint/topdown_heatmap/wflw/"
                    "td-hm_hrnetv2-w18_8xb64-60e_wflw-256x256.py'\n")
    cfg = Config.fromfile(str(pose))
    assert cfg.model.type == 'TopdownPoseEstimator'
    assert cfg.dataset_type == 'WFLWDataset'


# ---------------------------------------------------------------------------------------------
# Checkpoints under torch.load(weights_only=True)
# ---------------------------------------------------------------------------------------------
class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - labels) ** 2).mean())
        return out


class _ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)), labels=torch.ones(1))


class _NumpyMetaHook(Hook):
    """Stores what real checkpoints carry: numpy scalars, arrays and an empty array."""

    def before_train(self, runner):
        runner.message_hub.update_info('start_iter', runner.iter)
        runner.message_hub.update_info('np_scalar', np.float32(1.5))

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['meta'].update(best_score=np.float64(0.25), best_iter=np.int64(2),
                                  mean=np.arange(3, dtype=np.float32),
                                  sigmas=np.array([], dtype=np.float32))


_RUNNER_COUNT = [0]


def _make_runner(work_dir, max_iters, **kwargs) -> Runner:
    _RUNNER_COUNT[0] += 1
    return Runner(
        model=_ToyModel(), work_dir=str(work_dir),
        train_dataloader=DataLoader(_ToyData(), batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[_NumpyMetaHook()], default_scope='mmengine', log_level='WARNING',
        experiment_name=f'test_compat_{os.getpid()}_{_RUNNER_COUNT[0]}', **kwargs)


@pytest.fixture(scope='module')
def runner_ckpt(tmp_path_factory) -> Path:
    """``iter_2.pth`` of a 2-iteration CPU run of a toy model (the real MMEngine layout)."""
    from mmengine.registry import DefaultScope
    saved = list(DefaultScope._instance_dict.items())
    work_dir = tmp_path_factory.mktemp('runner')
    _make_runner(work_dir, max_iters=2).train()
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
    path = work_dir / 'iter_2.pth'
    assert path.is_file()
    return path


def _pickle_globals(path: Path) -> set:
    """``module.name`` of every global a torch zip checkpoint's pickle references."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('/data.pkl')))
    # protocol 2 writes Python 2 names for builtins; the unpickler maps them back
    return {arg.replace(' ', '.').replace('__builtin__.', 'builtins.')
            for op, arg, _ in pickletools.genops(data) if op.name == 'GLOBAL'}


def test_runner_checkpoint_needs_the_allowlist(runner_ckpt):
    unsafe = _pickle_globals(runner_ckpt)
    # What the allowlist has to cover; if MMEngine changes this, revisit checkpoint_safe_globals.
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert 'builtins.getattr' in unsafe
    assert 'numpy._core.multiarray._reconstruct' in unsafe


def test_runner_checkpoint_loads_weights_only(runner_ckpt):
    ckpt = torch.load(runner_ckpt, map_location='cpu', weights_only=True)
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.statistics('mean') == pytest.approx(buffer.mean())
    assert ckpt['message_hub']['runtime_info']['np_scalar'] == np.float32(1.5)
    meta = ckpt['meta']
    assert meta['best_score'] == 0.25 and isinstance(meta['best_score'], np.float64)
    assert meta['best_iter'] == 2 and isinstance(meta['best_iter'], np.int64)
    np.testing.assert_array_equal(meta['mean'], [0, 1, 2])
    assert meta['sigmas'].shape == (0, )
    assert meta['iter'] == 2


def test_mmengine_load_checkpoint(runner_ckpt):
    model = _ToyModel()
    ckpt = load_checkpoint(model, str(runner_ckpt), map_location='cpu')
    torch.testing.assert_close(model.linear.weight, ckpt['state_dict']['linear.weight'])


def test_runner_resume(runner_ckpt, tmp_path):
    work_dir = tmp_path / 'resume'
    shutil.copytree(runner_ckpt.parent, work_dir)
    runner = _make_runner(work_dir, max_iters=3, resume=True)
    runner.train()
    assert runner.message_hub.get_info('start_iter') == 2
    assert runner.iter == 3
    assert (work_dir / 'iter_3.pth').is_file()


def test_runner_load_from(runner_ckpt, tmp_path):
    runner = _make_runner(tmp_path, max_iters=2, load_from=str(runner_ckpt))
    runner.load_or_resume()
    expected = torch.load(runner_ckpt, map_location='cpu', weights_only=True)['state_dict']
    torch.testing.assert_close(runner.model.linear.weight, expected['linear.weight'])
    torch.testing.assert_close(runner.model.linear.bias, expected['linear.bias'])


def _rewrite_pickle(src: Path, dst: Path, transform) -> None:
    """Copy a torch zip checkpoint, replacing its ``data.pkl`` by ``transform(old_bytes)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w', zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                data = transform(data)
            zout.writestr(info, data)


def test_numpy1_module_paths_load(tmp_path):
    src, dst = tmp_path / 'np2.pth', tmp_path / 'np1.pth'
    torch.save(dict(meta=dict(best=np.float64(3.5), mean=np.arange(4, dtype=np.float32))), src)

    def to_numpy1(data: bytes) -> bytes:
        assert b'numpy._core.multiarray' in data
        return data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')

    _rewrite_pickle(src, dst, to_numpy1)
    assert 'numpy.core.multiarray._reconstruct' in _pickle_globals(dst)
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['best'] == 3.5
    np.testing.assert_array_equal(meta['mean'], np.arange(4))


def test_argparse_namespace_loads(tmp_path):
    path = tmp_path / 'mae.pth'
    model = _ToyModel()
    torch.save(dict(state_dict=model.state_dict(), args=argparse.Namespace(lr=1.5e-4, model='x')),
               path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['args'] == argparse.Namespace(lr=1.5e-4, model='x')
    other = _ToyModel()
    load_checkpoint(other, str(path), map_location='cpu')
    torch.testing.assert_close(other.linear.weight, model.linear.weight)


class _Evil:

    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f'touch {self.sentinel}', )


def test_malicious_reduce_is_rejected(tmp_path):
    sentinel = tmp_path / 'SENTINEL'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, payload=_Evil(str(sentinel))), path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        torch.load(path, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(_ToyModel(), str(path), map_location='cpu')
    assert not sentinel.exists()
    # Control: the payload is real, the full unpickler runs it.
    torch.load(path, weights_only=False)
    assert sentinel.exists()


def _getattr_pickle(module: str, name: str, attr: str) -> bytes:
    """A protocol-2 stream for ``getattr(<module>.<name>, attr)``, written by hand."""
    attr_bytes = attr.encode()
    return (b'\x80\x02' + b'cbuiltins\ngetattr\n' + f'c{module}\n{name}\n'.encode() +
            b'X' + struct.pack('<I', len(attr_bytes)) + attr_bytes +
            b'\x86' + b'R' + b'.')  # TUPLE2, REDUCE, STOP


@pytest.mark.parametrize('module, name, attr', [
    ('collections', 'OrderedDict', '__class__'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer', '__init__'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer', '__reduce_ex__'),
])
def test_getattr_escape_is_rejected(tmp_path, module, name, attr):
    src, dst = tmp_path / 'plain.pth', tmp_path / 'evil.pth'
    torch.save({}, src)
    _rewrite_pickle(src, dst, lambda _: _getattr_pickle(module, name, attr))
    with pytest.raises((pickle.UnpicklingError, RuntimeError), match=attr):
        torch.load(dst, weights_only=True)


def test_getattr_stand_in_resolves_history_buffer_statistics(tmp_path):
    src, dst = tmp_path / 'plain.pth', tmp_path / 'ok.pth'
    torch.save({}, src)
    _rewrite_pickle(
        src, dst,
        lambda _: _getattr_pickle('mmengine.logging.history_buffer', 'HistoryBuffer', 'mean'))
    assert torch.load(dst, weights_only=True) is HistoryBuffer.mean


def test_real_getattr_is_not_allowlisted():
    import builtins
    allowed = [entry[0] if isinstance(entry, tuple) else entry
               for entry in torch.serialization.get_safe_globals()]
    assert builtins.getattr not in allowed
    assert compat._restricted_getattr in allowed
    assert compat._restricted_getattr(HistoryBuffer, 'max') is HistoryBuffer.max
    with pytest.raises(RuntimeError, match='__globals__'):
        compat._restricted_getattr(HistoryBuffer.mean, '__globals__')


# ---------------------------------------------------------------------------------------------
# Distributed on CPU
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('launcher, rank', [('pytorch', None), ('none', '0')])
def test_cpu_distributed_is_off_unless_launched(monkeypatch, launcher, rank):
    from mmengine.config import Config
    for var in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE'):
        monkeypatch.delenv(var, raising=False)
    if rank is not None:
        monkeypatch.setenv('RANK', rank)
    cfg = Config(_sync_bn_cfg())
    assert compat.setup_cpu_distributed(cfg, launcher) is False
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert 'model_wrapper_cfg' not in cfg
    assert not torch.distributed.is_initialized()


# ---------------------------------------------------------------------------------------------
# Results of the fresh interpreters (last, so the children ran alongside the tests above)
# ---------------------------------------------------------------------------------------------
def test_import_faceanalysis_loads_nothing_heavy(fresh_process):
    assert _value(fresh_process, 'preloaded') == []


def _needs_placeholder(results: dict) -> None:
    if _value(results, 'real_ext'):
        pytest.skip('a compiled mmcv is installed: the mmcv-lite placeholder is not used')


def test_mmseg_mmpose_models_import_after_faceanalysis(fresh_process):
    _needs_placeholder(fresh_process)
    assert _value(fresh_process, 'import_stack') == '_MissingExtModule'


def test_compiled_op_call_raises_clear_error(fresh_process):
    _needs_placeholder(fresh_process)
    error = _value(fresh_process, 'nms')
    assert error is not None, 'mmcv.ops.nms ran although mmcv-lite has no compiled extension'
    assert error['type'] == 'CompiledOpUnavailable'
    assert error['module'] == 'faceanalysis.compat'
    assert "'nms'" in error['message'] and 'mmcv-lite' in error['message']


def test_mmpose_apis_imports_without_pkg_resources(fresh_process):
    assert _value(fresh_process, 'mmpose_apis') is True


def test_registry_builds_lazily_in_fresh_process(fresh_process):
    built = _value(fresh_process, 'lazy_build')
    assert built['imported_before'] is False  # the registry's locations imported the module
    assert built['cls'] == 'faceanalysis.models.backbones.presets.FaRL'
    assert built['shapes'] == [[1, 32, 4, 4]]


@pytest.mark.parametrize('scope', ['mmseg', 'mmpose'])
def test_mirrored_registries_build_the_same_class(fresh_process, scope):
    assert _value(fresh_process, f'{scope}_scope') == \
        'faceanalysis.models.backbones.presets.FaRL'


def test_mmseg_segmentor_resolves_our_backbone(fresh_process):
    assert _value(fresh_process, 'segmentor') == dict(backbone='FaRL', shape=[1, 3, 4, 4])


def test_registry_collision_with_mmseg_name_raises(fresh_process):
    result = _value(fresh_process, 'collisions')
    assert result['before'] == []  # detected whatever the import order
    clash = result['UPerHead']
    assert clash is not None, 'registering UPerHead did not raise'
    assert 'UPerHead is already registered in mmseg::model' in clash['error']
    assert clash['left_in'] == []


def test_registry_collision_leaves_no_half_registered_name(fresh_process):
    # HeatmapHead exists in the last mirror (mmpose) only: faceanalysis and mmseg must stay clean.
    clash = _value(fresh_process, 'collisions')['HeatmapHead']
    assert clash is not None, 'registering HeatmapHead did not raise'
    assert 'HeatmapHead is already registered in mmpose::model' in clash['error']
    assert clash['left_in'] == []


def test_registry_collision_with_own_name_raises(fresh_process):
    clash = _value(fresh_process, 'own_collision')
    assert clash is not None and 'FaRL is already registered' in clash['error']
    assert clash['left_in'] == []


def test_real_mmcv_ext_is_left_alone(launched_process):
    """With a compiled ``mmcv._ext`` present the placeholder is not installed, and ops use it."""
    assert _value(launched_process, 'kept') is True
    assert _value(launched_process, 'again') is False
    assert _value(launched_process, 'use_op') == dict(calls=['nms'], keep=[0])


def test_cpu_distributed_setup_with_launcher_env(launched_process):
    assert _value(launched_process, 'setup') == [True, True]  # second call: group already exists
    state = _value(launched_process, 'state')
    assert state['initialized'] and state['backend'] == 'gloo' and state['world_size'] == 1
    assert state['all_reduce'] == 1.0
    assert state['cfg_backend'] == 'gloo'
    assert _value(launched_process, 'setup_bare') == dict(
        backend='gloo', wrapper=dict(type='MMDistributedDataParallel', device_ids=None))


def test_cpu_distributed_adapts_config(launched_process):
    state = _value(launched_process, 'state')
    assert state['wrapper'] == dict(type='MMDistributedDataParallel', device_ids=None)
    assert state['norms'] == ['BN', 'BN', 'BN', 'BN', 'GN']
    assert state['requires_grad'] is True


def test_cpu_distributed_runner_wraps_ddp_on_cpu(launched_process):
    assert _value(launched_process, 'wrap') == dict(wrapper='MMDistributedDataParallel',
                                                device_ids=None, device='cpu')
