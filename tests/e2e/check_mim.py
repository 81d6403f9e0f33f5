"""``mim train up2 CONFIG`` — run by ``tox -e mim``, where openmim is installed.

Named ``check_*`` so that the default test run does not collect it; tox passes the file
explicitly.

openmim is not part of UP2's default environment: its dependency openxlab pins old versions of
setuptools, packaging and rich that break tox and others, so it lives in a tox env of its own.
"""

import shutil

import mim  # noqa: E402,F401  (fails loudly outside `tox -e mim`)

from tests.conftest import plugin_set, run_up2


def test_mim_train_runs_the_packaged_tools_script(tmp_path):
    config = plugin_set('toy') / 'up2_toy' / 'configs' / 'toy_regression.py'
    result = run_up2('train', 'up2', str(config), '--work-dir', str(tmp_path), '--cfg-options',
                     'train_cfg.max_iters=3', sets=('toy',), executable=[shutil.which('mim')])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / 'iter_3.pth').is_file()
