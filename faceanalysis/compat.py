"""Every shim the OpenMMLab 2.x stack needs on current torch, numpy and setuptools.

mmengine 0.10, mmcv 2.1, mmsegmentation 1.2.2 and mmpose 1.3.2 were released before torch 2.6,
numpy 2 and setuptools 82. Each function below fixes one break, says why in its docstring, is
idempotent, and is tested in ``tests/test_compat.py``. ``import faceanalysis`` calls
:func:`apply_all` before anything from mmcv, mmseg or mmpose is imported; the distributed shim
(:func:`setup_cpu_distributed`) needs the config and is called by ``tools/train.py`` and
``tools/test.py``.

Nothing here widens what a checkpoint may execute: the unpickling allowlist is the minimum that
MMEngine checkpoints need, and ``getattr`` is replaced by a stand-in that resolves four names only.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import os.path as osp
import sys
import types
from typing import Any, Callable

__all__ = [
    'apply_all', 'install_mmcv_ext_placeholder', 'patch_mmengine_package_lookup',
    'register_checkpoint_safe_globals', 'setup_cpu_distributed', 'CompiledOpUnavailable'
]


# ---------------------------------------------------------------------------------------------
# 1. mmcv-lite ships no compiled ``mmcv._ext``
# ---------------------------------------------------------------------------------------------
class CompiledOpUnavailable(RuntimeError):
    """Raised when code calls an mmcv op that only exists in the compiled ``mmcv`` build."""


class _MissingExtModule(types.ModuleType):
    """Stand-in for ``mmcv._ext``: any attribute is a function that raises a clear error."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith('__'):
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise CompiledOpUnavailable(
                f"mmcv compiled op '{name}' is unavailable: mmcv-lite is installed, which has no "
                'C++/CUDA extension. Install a compiled mmcv 2.1.0 (docs/install.md) to use it.')

        unavailable.__name__ = name
        return unavailable


def install_mmcv_ext_placeholder() -> bool:
    """Let ``mmseg.models`` / ``mmpose.models`` import on mmcv-lite.

    Why: ``mmcv.ops`` loads ``mmcv._ext`` at import time, and mmseg/mmpose import ``mmcv.ops``
    from modules we never call (CCHead, EDPose, ...). The placeholder makes the import succeed and
    turns any *call* of a compiled op into :class:`CompiledOpUnavailable`. It does nothing when a
    real compiled extension is present. Returns True if the placeholder was installed.
    """
    if 'mmcv._ext' in sys.modules:
        return isinstance(sys.modules['mmcv._ext'], _MissingExtModule)
    try:
        has_real_ext = importlib.util.find_spec('mmcv._ext') is not None
    except ImportError:  # mmcv itself is absent: nothing to patch
        return False
    if has_real_ext:
        return False
    module = _MissingExtModule('mmcv._ext', 'placeholder for the compiled mmcv extension')
    module.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    sys.modules['mmcv._ext'] = module
    return True


# ---------------------------------------------------------------------------------------------
# 2. setuptools >= 82 has no ``pkg_resources``
# ---------------------------------------------------------------------------------------------
def _distribution(package: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_installed(package: str) -> bool:
    """``importlib.metadata`` version of :func:`mmengine.utils.is_installed`."""
    if _distribution(package) is not None:
        return True
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None


def package2module(package: str) -> str:
    """``importlib.metadata`` version of :func:`mmengine.utils.package2module`."""
    dist = _distribution(package)
    if dist is None:
        raise importlib.metadata.PackageNotFoundError(package)
    top_level = dist.read_text('top_level.txt')
    if top_level and top_level.split():
        return top_level.split()[0]
    # Wheels built by modern backends may omit top_level.txt: derive it from the file list.
    for path in dist.files or ():
        parts = path.parts
        if len(parts) > 1 and parts[1] == '__init__.py':
            return parts[0]
    raise ValueError(f'can not infer the module name of {package}')


def get_installed_path(package: str) -> str:
    """``importlib.metadata`` version of :func:`mmengine.utils.get_installed_path`."""
    dist = _distribution(package)
    if dist is None:
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise importlib.metadata.PackageNotFoundError(package)
        if spec.origin is None:
            raise RuntimeError(f'{package} is a namespace package, which is invalid for '
                               '`get_installed_path`')
        return osp.dirname(spec.origin)
    location = str(dist.locate_file(''))
    possible_path = osp.join(location, package)
    if osp.exists(possible_path):
        return possible_path
    module = package2module(package)
    # Editable installs live outside site-packages: ask the import system.
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin is not None:
        return osp.dirname(spec.origin)
    return osp.join(location, module)


def patch_mmengine_package_lookup() -> bool:
    """Make ``_base_ = 'mmseg::...'`` configs and ``import mmpose.apis`` work without setuptools<81.

    Why: mmengine 0.10's ``package_utils`` imports ``pkg_resources``, which setuptools removed in
    82. The replacements use ``importlib.metadata``; they are patched into every module that bound
    the old functions by name. Does nothing while ``pkg_resources`` still imports.
    """
    if importlib.util.find_spec('pkg_resources') is not None:
        return False
    import mmengine.utils
    import mmengine.utils.package_utils as package_utils
    replacements = dict(is_installed=is_installed, get_installed_path=get_installed_path,
                        package2module=package2module)
    targets = [package_utils, mmengine.utils]
    for name in ('mmengine.config.config', 'mmengine.hub.hub'):
        targets.append(importlib.import_module(name))
    for module in targets:
        for name, func in replacements.items():
            if hasattr(module, name):
                setattr(module, name, func)
    return True


# ---------------------------------------------------------------------------------------------
# 3. torch >= 2.6 loads checkpoints with ``weights_only=True``
# ---------------------------------------------------------------------------------------------
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
# MMEngine's OneCycleParamScheduler pickles its annealing function the same way (ALIP's schedule).
_ONE_CYCLE_METHODS = ('_annealing_cos', '_annealing_linear')


def _restricted_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` inside checkpoints.

    MMEngine pickles ``HistoryBuffer.statistics_methods`` as ``getattr(HistoryBuffer, 'min')``;
    allowlisting the real ``getattr`` would hand a pickle every attribute of every allowlisted
    object (``__class__``, ``__globals__`` ...). This resolves exactly those four methods, and
    the two annealing functions ``OneCycleParamScheduler`` stores in its state.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    if obj is OneCycleParamScheduler and name in _ONE_CYCLE_METHODS:
        return getattr(obj, name)
    raise RuntimeError(f'checkpoint asked for getattr({obj!r}, {name!r}), which the faceanalysis '
                       'allowlist does not permit (only HistoryBuffer statistics methods and '
                       "OneCycleParamScheduler's annealing functions)")


def checkpoint_safe_globals() -> list:
    """The globals an MMEngine / MAE / HF checkpoint may reference, and why each is needed."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
    multiarray = importlib.import_module('numpy._core.multiarray')
    dtype_classes = sorted({type(np.dtype(code)) for code in np.typecodes['All'] if code != 'M'
                            and code != 'm'} | {type(np.dtype('datetime64[s]')),
                                                type(np.dtype('timedelta64[s]'))},
                           key=lambda cls: cls.__name__)
    entries = [
        HistoryBuffer,            # message_hub log history in every MMEngine checkpoint
        OneCycleParamScheduler,   # its state holds getattr(OneCycleParamScheduler, '_annealing_*')
        np.ndarray, np.dtype,     # numpy arrays/scalars in message_hub and dataset_meta
        *dtype_classes,           # numpy 2 pickles a dtype by its class (np.dtypes.Float64DType ...)
        bytes,                    # numpy 2 pickles empty arrays (mmpose sigmas) through bytes()
        argparse.Namespace,       # MAE / MCF checkpoints store the training ``args``
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
        # the same two under numpy 1's module path, for checkpoints written with numpy < 2
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
        (_restricted_getattr, 'builtins.getattr'),
    ]
    return entries


def register_checkpoint_safe_globals() -> None:
    """Let resume, ``load_from`` and ``init_cfg=Pretrained`` work under ``weights_only=True``.

    Why: mmengine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
    ``weights_only=True``, which rejects ``HistoryBuffer`` and numpy objects stored in every
    MMEngine checkpoint. We keep the safe loader and allowlist the minimum instead of turning it
    off: a pickle that references anything else (``os.system``, the real ``getattr``) still fails.
    """
    import torch.serialization
    torch.serialization.add_safe_globals(checkpoint_safe_globals())


# ---------------------------------------------------------------------------------------------
# 4. Distributed training on CPU (gloo) for tests and laptops
# ---------------------------------------------------------------------------------------------
def _replace_sync_bn(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_sync_bn(value)
    return node


def setup_cpu_distributed(cfg: Any, launcher: str) -> bool:
    """Make ``--launcher pytorch`` work on a machine without CUDA.

    Why: mmengine's ``init_dist('pytorch')`` always calls ``torch.cuda.set_device``, the Runner
    wraps DDP with ``device_ids=[LOCAL_RANK]`` and SyncBN only runs on GPU. When launched
    distributed without CUDA we create the gloo process group ourselves (the Runner then skips
    ``init_dist``), let DDP run on CPU (``device_ids=None``) and use plain BN. GPU runs are
    untouched. Returns True if the config was adapted.
    """
    import torch
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available() or 'RANK' not in os.environ:
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    # Build new dicts and assign them: ConfigDict.setdefault stores a copy of a dict default.
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg['env_cfg'] = env_cfg
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg['model_wrapper_cfg'] = wrapper
    _replace_sync_bn(cfg.get('model'))
    return True


def apply_all() -> None:
    """Apply every import-time shim (1-3). Safe to call more than once."""
    install_mmcv_ext_placeholder()
    patch_mmengine_package_lookup()
    register_checkpoint_safe_globals()
