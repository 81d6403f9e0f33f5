"""A third-party task plugin, built from its own folder outside the checkout and installed with
pip, trains jointly with a built-in task, tests and infers through the CLI (its own tests, run
here against the installed copy; no file of the core is touched)."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TEMPLATE = ROOT / 'examples' / 'plugin-template'


@pytest.mark.slow
def test_template_builds_installs_and_passes_its_own_tests(tmp_path):
    source = tmp_path / 'source'
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns('build', '*.egg-info',
                                                                     '__pycache__'))
    target = tmp_path / 'site'
    install = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation',
         '--target', str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    assert 'warning' not in install.stderr.lower(), install.stderr  # e.g. setuptools' data dirs
    leftovers = [p.name for p in source.iterdir() if p.name == 'build' or
                 p.name.endswith('.egg-info')]
    assert not leftovers, f'the build left {leftovers} in the source tree'
    assert (target / 'up2_example_counting' / 'configs' / 'counting_shapes_joint.py').is_file()
    assert (target / 'up2_example_counting-0.1.0.dist-info' / 'entry_points.txt').is_file()
    env = {**os.environ, 'PYTHONPATH': str(target)}
    env.pop('UP2_DISABLE_PLUGINS', None)
    tests = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(TEMPLATE / 'tests')],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert '6 passed' in tests.stdout
