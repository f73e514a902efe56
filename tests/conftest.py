"""Shared pytest setup for faceanalysis.

* ``import faceanalysis`` comes first: it applies the compat shims (mmcv-lite placeholder,
  pkg_resources-free package lookup, checkpoint allowlist) before any test imports mmcv, mmseg
  or mmpose.
* MMEngine's default scope is process-global and the latest one created wins, so a test that
  builds mmseg or mmpose modules must say which scope it runs in. Either mark it::

      @pytest.mark.scope('mmseg')
      def test_parsing_model(): ...

  or call the factory fixture::

      def test_pose_model(default_scope):
          default_scope('mmpose')

  Every test starts from, and returns to, the scope state it found (:func:`_isolate_default_scope`),
  so the result does not depend on test order.
* :func:`run_python` runs a snippet in a fresh interpreter (for import-order and environment
  dependent behaviour); :func:`work_dir` is a per-test work directory for Runners.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, Mapping, Optional

import faceanalysis  # noqa: F401  (first: applies faceanalysis.compat shims)

import pytest  # noqa: E402
from mmengine.registry import DefaultScope, init_default_scope  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SCOPES = ('mmseg', 'mmpose', 'faceanalysis')

# Variables that would make a child process distributed or GPU-bound by accident.
_LAUNCHER_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                 'MASTER_PORT', 'GROUP_RANK', 'TORCHELASTIC_RUN_ID')


@pytest.fixture(autouse=True)
def _isolate_default_scope(request):
    """Restore MMEngine's ``DefaultScope`` instances after each test; apply ``@mark.scope``."""
    saved = list(DefaultScope._instance_dict.items())
    marker = request.node.get_closest_marker('scope')
    if marker is not None:
        _set_scope(*marker.args, **marker.kwargs)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def _set_scope(name: str) -> str:
    if name not in SCOPES:
        raise ValueError(f'unknown default scope {name!r}; expected one of {SCOPES}')
    init_default_scope(name)
    current = DefaultScope.get_current_instance()
    assert current is not None and current.scope_name == name
    return name


@pytest.fixture
def default_scope() -> Callable[[str], str]:
    """Factory: ``default_scope('mmseg' | 'mmpose' | 'faceanalysis')`` sets this test's scope."""
    return _set_scope


@pytest.fixture
def repo_root() -> Path:
    """The repository root (configs/, tools/, tests/data/ live under it)."""
    return REPO_ROOT


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """An empty per-test directory to use as a Runner's ``work_dir``."""
    path = tmp_path / 'work_dir'
    path.mkdir()
    return path


def _child_env(env: Optional[Mapping[str, str]]) -> dict:
    child = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV}
    # this checkout first, as pytest's `pythonpath = .` does for the tests themselves
    child['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                         os.environ.get('PYTHONPATH')]))
    child.update(env or {})
    return child


@pytest.fixture
def run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``code`` (dedented) with this interpreter in a fresh process; return the result.

    ``run_python(code, env=None, cwd=tmp_path, timeout=120, check=True)``: launcher variables
    (``RANK`` ...) are removed from the inherited environment unless ``env`` sets them, and with
    ``check=True`` a non-zero exit fails the test with the child's output.
    """

    def run(code: str, env: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None,
            timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                              cwd=str(cwd or tmp_path), env=_child_env(env), timeout=timeout,
                              capture_output=True, text=True)
        if check and proc.returncode != 0:
            pytest.fail(f'child process exited with {proc.returncode}\n--- stdout\n{proc.stdout}'
                        f'\n--- stderr\n{proc.stderr}', pytrace=False)
        return proc

    return run
