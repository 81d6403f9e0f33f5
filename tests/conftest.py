"""Shared test helpers: fixture plugin sets, and running the real ``up2`` executable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
