"""The documentation site (README.md's `make docs`) builds offline with warnings as errors, its internal links and anchors
are checked (MkDocs' validation, strict), and the generated result tables agree with the JSON.

``make docs`` runs the same build; the README's links into ``docs/`` are checked here too
(README.md is not a page of the site).
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

MKDOCS = [sys.executable, '-m', 'mkdocs']


def _build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1', PYTHONPATH=str(ROOT))
    return subprocess.run([*MKDOCS, 'build', '--strict', '--site-dir', str(site)], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def copy(tmp_path_factory):
    """The project's docs, config and sources, in a folder a test may break."""
    root = tmp_path_factory.mktemp('docs_project')
    shutil.copytree(ROOT / 'docs', root / 'docs')
    shutil.copy(ROOT / 'mkdocs.yml', root / 'mkdocs.yml')
    (root / 'up2core').symlink_to(ROOT / 'up2core')  # what mkdocstrings reads
    return root


def test_the_site_builds_strict_with_the_api_reference(tmp_path):
    result = _build(ROOT, tmp_path / 'site')
    assert result.returncode == 0, result.stderr[-4000:]
    assert 'WARNING' not in result.stderr, result.stderr[-4000:]
    api = (tmp_path / 'site' / 'api.html').read_text()
    for name in ('UnmixedTrainLoop', 'UnifiedLikelihood', 'MTAdamW', 'RegionTaskBase',
                 'init_model', 'Up2HookSpecs'):
        assert name in api, name
    for page in ('index', 'getting-started', 'tasks/detection', 'reliability', 'benchmarks'):
        assert (tmp_path / 'site' / f'{page}.html').is_file(), page


@pytest.mark.parametrize('broken', ['[x](no-such-page.md)', '[x](reliability.md#no-such-anchor)',
                                    '[x](#nowhere)'])
def test_a_broken_link_or_anchor_fails_the_build(copy, tmp_path, broken):
    page = copy / 'docs' / 'shapes.md'
    original = page.read_text()
    page.write_text(original + f'\nSee {broken}.\n')
    try:
        result = _build(copy, tmp_path / 'site')
    finally:
        page.write_text(original)
    assert result.returncode != 0 and 'shapes.md' in result.stderr, result.stderr[-2000:]


def test_the_readme_links_point_at_files_that_exist():
    text = (ROOT / 'README.md').read_text()
    targets = re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text)
    local = [t for t in targets if not re.match(r'[a-z]+:', t)]
    assert local, 'the README links into docs/'
    for target in local:
        assert (ROOT / target).exists(), target


def test_the_generated_tables_agree_with_the_json():
    result = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'docs_tables.py'),
                             '--check'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_every_generated_block_holds_a_table():
    pages = [*sorted((ROOT / 'docs').rglob('*.md'))]
    blocks = [(page.name, name, body) for page in pages
              for name, body in re.findall(r'<!-- generated: (\S+) -->\n(.*?)<!-- end: \1 -->',
                                           page.read_text(), flags=re.S)]
    assert len(blocks) >= 14, [b[:2] for b in blocks]
    for page, name, body in blocks:
        assert body.startswith('| ') and body.count('\n') >= 3, (page, name)
