"""Every shell and Python block of the documentation runs here, or says why not.

A block is a fenced ``bash`` or ``python`` block of ``README.md`` or ``docs/**.md``.  The line
before its fence may say:

* ``<!-- not run: REASON -->``: shown only (needs GPUs, COCO, the main job's checkpoint...);
* ``<!-- run by: tests/PATH.py -->``: another test runs it (that file must exist and name the
  page);
* ``<!-- run on a 4-step checkpoint -->``: it is run here with the main job's config and
  checkpoint swapped for the tiny generalist fixture's (4 steps on a small Shapes set), and its
  image names for that set's images: the commands and calls are the page's, only the weights
  are not the main job's;

otherwise the block is run by :func:`test_the_block_runs`: Python in a fresh interpreter, shell
with ``bash -euo pipefail``, both in a temporary folder with the venv's ``up2`` on ``PATH``.
A block without a marker that cannot run fails the suite, so the pages cannot drift from the
code.  Output listings (fences without a language), YAML and TOML are not code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]
LANGUAGES = ('bash', 'python')
_FENCE = re.compile(r'^```(\w*)\s*$')
_MARK = re.compile(r'^<!-- (not run|run by|run on a 4-step checkpoint):? ?(.*?) -->$')
SWAPPED = 'run on a 4-step checkpoint'


def blocks() -> list[tuple[Path, int, str, str, tuple[str, str] | None]]:
    """(page, line, language, code, marker) of every bash and Python block."""
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        index = 0
        while index < len(lines):
            fence = _FENCE.match(lines[index])
            if not fence:
                index += 1
                continue
            end = index + 1
            while not lines[end].startswith('```'):
                end += 1
            if fence[1] in LANGUAGES:
                previous = lines[index - 1].strip() if index else ''
                mark = _MARK.match(previous)
                found.append((page, index + 1, fence[1], '\n'.join(lines[index + 1:end]),
                              (mark[1], mark[2]) if mark else None))
            index = end + 1
    return found


BLOCKS = blocks()
RUN_HERE = [block for block in BLOCKS if block[4] is None]
RUN_SWAPPED = [block for block in BLOCKS if block[4] and block[4][0] == SWAPPED]


def test_every_block_not_run_here_says_why_or_who_runs_it():
    assert len(BLOCKS) > 30
    for page, line, _, code, mark in BLOCKS:
        if mark and mark[0] == 'run by':
            runner = ROOT / mark[1]
            assert runner.is_file(), f'{page}:{line}: {mark[1]} does not exist'
            assert page.name in runner.read_text(), f'{mark[1]} does not name {page.name}'
        if mark and mark[0] == SWAPPED:
            assert 'work_dirs/demo/iter_260.pth' in code, f'{page}:{line}: nothing to swap'
        if mark and mark[0] == 'not run':
            assert len(mark[1]) > 10, f'{page}:{line}: say why it is not run'


@pytest.mark.parametrize('page,line,language,code,mark', RUN_HERE,
                         ids=[f'{page.relative_to(ROOT)}:{line}' for page, line, *_ in RUN_HERE])
def test_the_block_runs(page, line, language, code, mark, tmp_path):
    _run(page, line, language, code, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('page,line,language,code,mark', RUN_SWAPPED,
                         ids=[f'{page.relative_to(ROOT)}:{line}' for page, line, *_ in RUN_SWAPPED])
def test_the_block_runs_on_a_small_checkpoint(page, line, language, code, mark, tmp_path,
                                             tiny_generalist):
    config, checkpoint, val = tiny_generalist
    images = sorted(val.glob('*.png'))
    shutil.copy(images[0], tmp_path / 'image.png')
    (tmp_path / 'photos').mkdir()
    for image in images[:3]:
        shutil.copy(image, tmp_path / 'photos' / image.name)
    swaps = {'up2_tiny_shapes_generalist': str(config),
             'work_dirs/demo/iter_260.pth': str(checkpoint),
             'data/shapes/images/val/000000.png': str(images[0])}
    for old, new in swaps.items():
        code = code.replace(old, new)
    _run(page, line, language, code, tmp_path)


def _run(page: Path, line: int, language: str, code: str, cwd: Path) -> None:
    env = dict(os.environ, PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}',
               PYTHONPATH=str(ROOT))
    command = [sys.executable, '-c', code] if language == 'python' else \
        ['bash', '-euo', 'pipefail', '-c', code]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (f'{page.relative_to(ROOT)}:{line} failed:\n{code}\n'
                                    f'{result.stdout[-2000:]}{result.stderr[-3000:]}')
