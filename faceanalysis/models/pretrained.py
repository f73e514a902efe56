"""Find the pre-trained weights a config will load, and fail early when one is missing.

MMEngine loads ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in ``Runner.train()`` only
after building the data loaders, the optimizer and the hooks (and, in our tools, after generating
synthetic data): a missing file would surface minutes into a run, inside a traceback.
``tools/train.py`` calls :func:`check_pretrained_checkpoints` right after loading the config.

Example:
    >>> from mmengine.config import Config
    >>> cfg = Config.fromfile('configs/parsing/lapa_farl.py')
    >>> find_pretrained_checkpoints(cfg)
    [('model.backbone.init_cfg.checkpoint', 'checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep16.pth')]
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, List, Mapping, Optional, Tuple

__all__ = ['find_pretrained_checkpoints', 'missing_pretrained_checkpoints',
           'check_pretrained_checkpoints']

_REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'open-mmlab://', 'torchvision://',
                    'mmcls://', 'mmpretrain://', 'modelzoo://')


#: Modules that read a file named in their own ``checkpoint`` / ``codebook`` argument at
#: construction (frozen teachers and MIM targets of the pre-training recipes).
_FILE_ARGUMENTS = {
    'Pretrained': ('checkpoint', ),
    'FrozenViTTeacher': ('checkpoint', ),
    'TeacherFeatureTarget': ('checkpoint', ),
    'CodebookTokenizer': ('checkpoint', 'codebook'),
}


def _walk(node: Any, key: str, found: List[Tuple[str, str]]) -> None:
    if isinstance(node, Mapping):
        for argument in _FILE_ARGUMENTS.get(node.get('type'), ()):
            if isinstance(node.get(argument), str):
                found.append((f'{key}.{argument}', node[argument]))
        for name, value in node.items():
            _walk(value, f'{key}.{name}', found)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, f'{key}[{index}]', found)


def find_pretrained_checkpoints(cfg: Mapping) -> List[Tuple[str, str]]:
    """Every ``init_cfg`` checkpoint (and mmseg's ``model.pretrained``) of ``cfg.model``, and
    the files of frozen teachers and MIM targets (``checkpoint=``, ``codebook=``).

    Returns:
        ``[(config key, path), ...]`` in config order, e.g.
        ``('model.backbone.init_cfg.checkpoint', 'checkpoints/....pth')``.
    """
    model = cfg.get('model')
    found: List[Tuple[str, str]] = []
    if model is None:
        return found
    if isinstance(model.get('pretrained'), str):
        found.append(('model.pretrained', model['pretrained']))
    _walk(model, 'model', found)
    return found


def missing_pretrained_checkpoints(cfg: Mapping) -> List[Tuple[str, str]]:
    """The local checkpoints of :func:`find_pretrained_checkpoints` that do not exist (relative
    paths are relative to the working directory, as MMEngine opens them); URLs are not checked."""
    return [(key, path) for key, path in find_pretrained_checkpoints(cfg)
            if not path.startswith(_REMOTE_PREFIXES) and not osp.exists(path)]


def check_pretrained_checkpoints(cfg: Mapping, config_name: Optional[str] = None) -> None:
    """Raise ``FileNotFoundError`` naming every missing pre-trained checkpoint of ``cfg``.

    Args:
        cfg: the (merged) config.
        config_name: shown in the message (the config file).
    """
    missing = missing_pretrained_checkpoints(cfg)
    if not missing:
        return
    from faceanalysis.converters.io import _DOWNLOAD_HINT
    where = f'{config_name} needs' if config_name else 'the config needs'
    lines = [f'{where} pre-trained weights that are not there:']
    for key, path in missing:
        lines.append(f'  {key} = {path!r} (looked for {osp.abspath(path)}, from the working '
                     f'directory {os.getcwd()})')
    lines.append(_DOWNLOAD_HINT)
    key = missing[0][0]
    hint = f'To use a file elsewhere: --cfg-options {key}=PATH.'
    if key.endswith('init_cfg.checkpoint'):
        hint += (' To train without pre-trained weights (not the published recipe): '
                 f'--cfg-options {key.rsplit(".", 1)[0]}=None')
    lines.append(hint)
    raise FileNotFoundError('\n'.join(lines))
