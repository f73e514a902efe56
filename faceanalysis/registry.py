"""Registries of faceanalysis, and the one mechanism that makes our modules usable everywhere.

Our registries have the scope ``faceanalysis`` and are direct children of MMEngine's root
registries, so pre-training configs run with ``default_scope='faceanalysis'`` and still find every
MMEngine component (runner, loops, optimizers, hooks).

Task configs run in mmseg's or mmpose's scope, because mmseg's ``EncoderDecoder`` and mmpose's
``TopdownPoseEstimator`` resolve their sub-modules in the *current* scope. A registry child cannot
see its siblings, and a ``faceanalysis.Name`` prefix only resolves direct children of the root
(shared/docs/stack.md §2.2 tested the variants). So every module registered here is also
registered, under the same name, into the mmseg and mmpose registry of the same kind
(:class:`MirroredRegistry`). In any of the three scopes a config then writes plain
``type='FaRL'``, as long as the defining module was imported (``custom_imports`` in
``configs/_base_/default_runtime.py``; :data:`MODELS` imports its modules lazily on its own).

Our class names are chosen not to collide with mmseg/mmpose names (``FaceViT``, not
``VisionTransformer``); a collision raises at import time instead of silently shadowing.

Example:
    >>> import faceanalysis
    >>> from faceanalysis.registry import MODELS
    >>> vit = MODELS.build(dict(type='FaRL', arch='base', img_size=224))
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Type, Union

import mmpose.registry as pose_registry
import mmseg.registry as seg_registry
from mmengine import registry as root
from mmengine.registry import Registry

__all__ = [
    'MirroredRegistry', 'MODELS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'METRICS',
    'EVALUATOR', 'HOOKS', 'LOOPS', 'MODEL_WRAPPERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'VISUALIZERS', 'VISBACKENDS', 'CHECKPOINT_CONVERTERS'
]

SCOPE = 'faceanalysis'


class MirroredRegistry(Registry):
    """A ``faceanalysis`` registry that also registers each module into mirror registries.

    Args:
        name: registry name, as MMEngine's (``'model'``, ``'dataset'`` ...).
        parent: the MMEngine root registry of that kind.
        mirrors: registries (of mmseg, mmpose) that receive every module registered here.
        locations: modules imported on first lookup.
    """

    def __init__(self, name: str, parent: Registry, mirrors: Sequence[Registry] = (),
                 locations: Sequence[str] = ()) -> None:
        super().__init__(name, parent=parent, scope=SCOPE, locations=list(locations))
        self.mirrors = tuple(mirrors)

    def _register_module(self, module: Type, module_name: Optional[Union[str, List[str]]] = None,
                         force: bool = False) -> None:
        if not force:
            self._check_free(module, module_name)
        super()._register_module(module, module_name, force)
        for mirror in self.mirrors:
            mirror._register_module(module, module_name, force)

    def _check_free(self, module: Type, module_name: Optional[Union[str, List[str]]]) -> None:
        """Raise before registering anything if a name is taken here or in a mirror.

        The mirrors' own modules are imported first (their ``locations``), so a clash with an
        mmseg/mmpose name raises now, whatever the import order, and no registry is left holding a
        half-registered name.
        """
        names = [module_name] if isinstance(module_name, str) else list(
            module_name or [module.__name__])
        for registry in (self, *self.mirrors):
            if registry is not self:
                registry.import_from_location()
            for name in names:
                existing = registry._module_dict.get(name)
                if existing is not None:
                    raise KeyError(f'{name} is already registered in {registry.scope}::'
                                   f'{registry.name} at {existing.__module__}; faceanalysis '
                                   'modules need names unique across mmseg and mmpose')


def _mirrored(kind: str, locations: Sequence[str] = ()) -> MirroredRegistry:
    """Our registry of ``kind`` (attribute name in ``*.registry``, e.g. ``'MODELS'``).

    ``locations`` lists the packages that define modules of this kind; a task package adds itself
    here when it adds the first one.
    """
    parent = getattr(root, kind)
    mirrors = [getattr(lib, kind) for lib in (seg_registry, pose_registry) if hasattr(lib, kind)]
    return MirroredRegistry(parent.name, parent, mirrors, locations)


MODELS = _mirrored('MODELS', locations=['faceanalysis.models'])
DATASETS = _mirrored('DATASETS', locations=['faceanalysis.datasets'])
DATA_SAMPLERS = _mirrored('DATA_SAMPLERS', locations=['faceanalysis.datasets'])
TRANSFORMS = _mirrored('TRANSFORMS', locations=['faceanalysis.datasets'])
METRICS = _mirrored('METRICS', locations=['faceanalysis.evaluation'])
EVALUATOR = _mirrored('EVALUATOR')
HOOKS = _mirrored('HOOKS', locations=['faceanalysis.engine'])
LOOPS = _mirrored('LOOPS', locations=['faceanalysis.engine'])
MODEL_WRAPPERS = _mirrored('MODEL_WRAPPERS', locations=['faceanalysis.engine'])
OPTIM_WRAPPERS = _mirrored('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _mirrored('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _mirrored('PARAM_SCHEDULERS')
VISUALIZERS = _mirrored('VISUALIZERS')
VISBACKENDS = _mirrored('VISBACKENDS')

# Our own kind: functions that turn a released checkpoint's state dict into our layout.
CHECKPOINT_CONVERTERS = Registry('checkpoint converter', scope=SCOPE,
                                 locations=['faceanalysis.converters'])
