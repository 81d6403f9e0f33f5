"""The repository passes ruff (the same check as `tox -e lint`)."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_ruff_is_clean():
    ruff = shutil.which('ruff') or str(Path(sys.executable).with_name('ruff'))
    result = subprocess.run([ruff, 'check', str(ROOT)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]


def test_every_module_of_the_library_opens_with_what_it_is_for():
    import ast

    silent = [str(path.relative_to(ROOT)) for folder in ('up2core', 'plugins')
              for path in sorted((ROOT / folder).rglob('*.py'))
              if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not silent, f'modules without a docstring: {silent}'
