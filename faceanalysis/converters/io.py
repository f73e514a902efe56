"""Safe reading of released checkpoints: single files and Hugging Face model directories.

Nothing here executes code from a checkpoint. ``.safetensors`` files hold tensors only; every other
file goes through ``torch.load(..., weights_only=True)``, whose unpickler accepts tensors,
containers, primitives and the short allowlist that ``faceanalysis.compat`` registers when
``faceanalysis`` is imported (MMEngine's ``HistoryBuffer``, numpy arrays, MAE's
``argparse.Namespace``). A pickle that references anything else is refused with
:class:`UnsafeCheckpointError`; we never fall back to ``weights_only=False``.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import pickle
from typing import Any, Dict, List, Optional, Union

import torch

__all__ = ['UnsafeCheckpointError', 'load_checkpoint_file', 'read_hf_config', 'HF_WEIGHT_FILES']

PathLike = Union[str, 'os.PathLike[str]']

#: Weight files of a Hugging Face model directory, in the order they are preferred. safetensors
#: first: it needs no unpickling at all. The ``open_clip_*`` names are open_clip's hub layout.
HF_WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin',
                   'pytorch_model.bin.index.json', 'open_clip_model.safetensors',
                   'open_clip_pytorch_model.bin')

_DOWNLOAD_HINT = ('Download the released weights into checkpoints/ (FaRL: '
                  'FaRL-Base-Patch16-LAIONFace20M-ep{16,64}.pth; MCF: the ViT-B/16 .pth; FLIP-80M: '
                  'the whole Hugging Face model directory with config.json and model.safetensors) '
                  "and point init_cfg.checkpoint (or the command's SRC) at it.")


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that the ``weights_only`` loader refused: it is not plain tensors/containers."""


def _rejection_detail(error: BaseException) -> str:
    """The line of torch's ``weights_only`` message that says what was rejected.

    torch's full message also suggests ``weights_only=False``; we deliberately do not pass that
    suggestion on.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for marker in ('global', 'unsupported', 'blocked', 'can only'):
        for line in lines:
            if marker in line.lower() and 'weights_only' not in line:
                # Keep what was rejected, not torch's advice on how to allowlist it.
                return line.replace('WeightsUnpickler error: ', '').split(' Please use')[0]
    return type(error).__name__


def _safe_torch_load(path: str) -> Any:
    """``torch.load`` with the safe unpickler; clear errors instead of torch's generic ones."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _rejection_detail(error).rstrip('.')
        if 'global' in detail.lower() or 'class' in detail.lower():
            reason = ('it contains non-tensor objects (pickled Python classes or functions), which '
                      'could run arbitrary code when loaded, so it is refused for safety')
        else:
            reason = ('the safe tensor-only loader can not read it: it is not a PyTorch '
                      'checkpoint of tensors (a raw pickle, a truncated download or an HTML '
                      'error page?) and is refused for safety')
        raise UnsafeCheckpointError(
            f'{path}: {reason}. Loader detail: {detail}. Only tensors, containers, numbers, '
            'strings and the faceanalysis.compat allowlist are accepted; re-save just the state '
            'dict (tensors) of a checkpoint you trust, or use the .safetensors release.') from None
    except RuntimeError as error:
        if 'zip archive' in str(error) or 'central directory' in str(error):
            raise RuntimeError(f'{path} is not a readable PyTorch checkpoint ({error}); the file '
                               'is probably truncated: download it again. ' + _DOWNLOAD_HINT
                               ) from error
        raise


def _load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(path, device='cpu')


def _load_weight_file(path: str) -> Any:
    if path.endswith('.safetensors'):
        return _load_safetensors(path)
    return _safe_torch_load(path)


def _load_sharded(index_path: str) -> Dict[str, torch.Tensor]:
    """A Hugging Face sharded checkpoint: ``*.index.json`` maps each key to its shard file."""
    with open(index_path) as f:
        weight_map = json.load(f).get('weight_map', {})
    if not weight_map:
        raise ValueError(f'{index_path} has no weight_map: not a Hugging Face shard index')
    state_dict: Dict[str, torch.Tensor] = {}
    folder = osp.dirname(index_path)
    for shard in sorted(set(weight_map.values())):
        shard_path = osp.join(folder, shard)
        if not osp.isfile(shard_path):
            raise FileNotFoundError(f'{index_path} lists shard {shard}, which is missing from '
                                    f'{folder}. ' + _DOWNLOAD_HINT)
        state_dict.update(_load_weight_file(shard_path))
    return state_dict


def _load_hf_directory(path: str) -> Dict[str, torch.Tensor]:
    for name in HF_WEIGHT_FILES:
        candidate = osp.join(path, name)
        if osp.isfile(candidate):
            if name.endswith('.index.json'):
                return _load_sharded(candidate)
            return _load_weight_file(candidate)
    contents: List[str] = sorted(os.listdir(path))
    kind = ('a Hugging Face model directory (config.json found)'
            if 'config.json' in contents else 'a directory')
    raise FileNotFoundError(
        f'{path} is {kind} without weights: expected one of {list(HF_WEIGHT_FILES)}, found '
        f'{contents[:20] or "nothing"}. Download model.safetensors (or pytorch_model.bin) next to '
        'config.json. ' + _DOWNLOAD_HINT)


def load_checkpoint_file(path: PathLike) -> Any:
    """Read a checkpoint without executing code from it.

    Args:
        path: a ``.safetensors`` file, any ``torch.save`` file (``.pth``, ``.pt``, ``.bin``,
            ``.ckpt``), or a Hugging Face model directory (``config.json`` plus
            ``model.safetensors`` / ``pytorch_model.bin`` or their sharded ``*.index.json``).

    Returns:
        What the file holds, on CPU: a flat ``{name: tensor}`` for safetensors and HF
        directories, otherwise the saved object (often a wrapper such as
        ``{'state_dict': ...}`` or ``{'model': ..., 'epoch': ..., 'args': Namespace}``).

    Raises:
        FileNotFoundError: the path does not exist, or a directory holds no weight file.
        UnsafeCheckpointError: a pickle the ``weights_only`` loader refuses.
    """
    path = os.fspath(path)
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint {path} not found. ' + _DOWNLOAD_HINT)
    if osp.isdir(path):
        return _load_hf_directory(path)
    return _load_weight_file(path)


def read_hf_config(path: PathLike) -> Optional[dict]:
    """The ``config.json`` of a Hugging Face model, or None.

    ``path`` is the model directory or a weight file inside it.
    """
    path = os.fspath(path)
    folder = path if osp.isdir(path) else osp.dirname(path)
    config_path = osp.join(folder, 'config.json')
    if not osp.isfile(config_path):
        return None
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None
