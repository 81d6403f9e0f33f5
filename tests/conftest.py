"""Shared test helpers: fixture plugin sets, and running the real ``up2`` executable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs two pytest workers on a 2-core machine: one thread each (and in every
    # process a test starts, which inherits the variable), so trainings never oversubscribe
    # the cores while the other worker waits on imports, subprocesses or I/O.
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch

    torch.set_num_threads(1)
PLUGIN_SETS = Path(__file__).resolve().parent / 'fixtures' / 'plugin_sets'
UP2 = Path(sys.executable).with_name('up2')


def plugin_set(name: str) -> Path:
    path = PLUGIN_SETS / name
    assert path.is_dir(), path
    return path


@pytest.fixture
def use_plugin_sets(monkeypatch):
    """Make fixture plugin sets discoverable in this process, then reload the plugins.

    Returns a function ``activate(*set_names, **env)``; everything is undone after the test.
    """
    from up2core.plugin import load_plugins

    def activate(*names: str, **env: str):
        for name in names:
            monkeypatch.syspath_prepend(str(plugin_set(name)))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return load_plugins(force=True)

    yield activate
    monkeypatch.undo()
    load_plugins(force=True)


def run_up2(*args: str, sets: tuple[str, ...] = (), env: dict | None = None, cwd=None,
            timeout: int = 300, executable: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``up2`` console script with fixture plugin sets on PYTHONPATH."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith('UP2_')}
    paths = [str(plugin_set(s)) for s in sets]
    if full_env.get('PYTHONPATH'):
        paths.append(full_env['PYTHONPATH'])
    full_env['PYTHONPATH'] = os.pathsep.join(paths)
    full_env.update(env or {})
    command = (executable or [str(UP2)]) + list(args)
    return subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


#: where tests leave files for people to look at (the demo's screenshot); not committed
ARTIFACTS = Path(os.environ.get('UP2_TEST_ARTIFACTS', ROOT / 'test-output'))
#: the main job's config on a few small Shapes images (tests/fixtures/configs)
TINY_GENERALIST = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_generalist_e2e.py'


@pytest.fixture(scope='session')
def tiny_generalist(tmp_path_factory):
    """``(config, checkpoint, val images folder)``: the five-task tiny generalist trained for 4
    steps on its small Shapes set (a minute or two), shared by the export and demo tests."""
    tmp = tmp_path_factory.mktemp('tiny_generalist')
    work = tmp / 'work'
    result = run_up2('train', str(TINY_GENERALIST), '--work-dir', str(work), cwd=tmp,
                     timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return TINY_GENERALIST, work / 'iter_4.pth', tmp / 'data' / 'shapes_generalist_e2e' / \
        'images' / 'val'
