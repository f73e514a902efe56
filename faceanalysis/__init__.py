"""faceanalysis: facial representation learning and its downstream tasks on MMEngine.

Importing the package first applies the compatibility shims of :mod:`faceanalysis.compat`
(mmcv-lite, setuptools without pkg_resources, torch's ``weights_only`` loader), so that
mmseg, mmpose and MMEngine checkpoints work on the current stack. Sub-packages are imported on
demand: the registries of :mod:`faceanalysis.registry` import them on first lookup, and configs
list them in ``custom_imports``.
"""
from . import compat

compat.apply_all()

from .version import __version__  # noqa: E402

__all__ = ['__version__']
