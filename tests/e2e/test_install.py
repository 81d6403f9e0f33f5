"""The README's install, from nothing, in a fresh virtual environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SHARED_WHEELS = ROOT.parent / 'shared' / 'wheels'


def _run(command, env=None, timeout=1200):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _plan(python, **env):
    out = _run(['bash', str(ROOT / 'scripts' / 'install_mmcv.sh'), python],
               env={'UP2_MMCV_PLAN_ONLY': '1', **env}).stdout
    return out.strip().splitlines()[-1]


def test_mmcv_source_choice(tmp_path):
    """Prebuilt wheel only for its exact torch; else a wheel built earlier; else compile."""
    torch_version = _run([sys.executable, '-c', 'import torch; print(torch.__version__)']
                         ).stdout.strip()
    empty_cache = str(tmp_path / 'cache')
    no_shared = str(tmp_path / 'no-shared-wheels')
    plan = _plan(sys.executable, UP2_SHARED_WHEELS=no_shared, UP2_MMCV_CACHE=empty_cache)
    assert plan.endswith(f'build from source for torch {torch_version} into {empty_cache}/'
                         f'cp{sys.version_info[0]}{sys.version_info[1]}-torch-{torch_version}')

    built = Path(plan.split(' into ')[1])
    built.mkdir(parents=True)
    (built / f'mmcv-2.1.0-cp{sys.version_info[0]}{sys.version_info[1]}-linux_x86_64.whl'
     ).write_bytes(b'')
    plan = _plan(sys.executable, UP2_SHARED_WHEELS=no_shared, UP2_MMCV_CACHE=empty_cache)
    assert plan.endswith(str(built / f'mmcv-2.1.0-cp{sys.version_info[0]}'
                                     f'{sys.version_info[1]}-linux_x86_64.whl'))

    if torch_version == '2.13.0+cpu' and SHARED_WHEELS.is_dir():
        plan = _plan(sys.executable, UP2_MMCV_CACHE=empty_cache)
        assert plan.startswith(f'[install_mmcv] plan: {SHARED_WHEELS}') or \
            'shared/wheels' in plan


@pytest.mark.slow
def test_bootstrap_into_a_fresh_venv_then_use_the_cli(tmp_path):
    """scripts/bootstrap.sh (what `make test` and `make demo` run) on an empty folder."""
    venv = tmp_path / 'venv'
    env = {'UP2_EXTRAS': 'test', 'UP2_MMCV_CACHE': str(tmp_path / 'mmcv-cache')}
    out = _run(['bash', str(ROOT / 'scripts' / 'bootstrap.sh'), str(venv)], env=env).stdout
    assert 'ready in' in out
    if SHARED_WHEELS.is_dir():
        assert 'using prebuilt wheel' in out
    up2 = venv / 'bin' / 'up2'
    assert _run([str(up2), '--version']).stdout.startswith('up2 0.')
    plugins = _run([str(up2), 'plugins']).stdout
    assert 'up2  [loaded]  up2 0.1.0' in plugins
    _run([str(venv / 'bin' / 'python'), '-c',
          'import up2core, mmdet, mmcv.ops, pluggy, pycocotools, transformers; '
          'from up2core.registry import TASKS, MODELS; assert MODELS.get("mmdet.ResNet")'])
    data = _run([str(up2), 'data', 'shapes', '--out', str(tmp_path / 'shapes'),
                 '--num-train', '4', '--num-val', '2', '--image-size', '64']).stdout
    assert '"images": 4' in data
    # a second run with nothing changed only re-points the editable install
    again = _run(['bash', str(ROOT / 'scripts' / 'bootstrap.sh'), str(venv)], env=env).stdout
    assert 'install_mmcv' not in again and 'ready in' in again
