"""The ``up2`` executable, end to end, in the environment the tests run in."""

import json

import pytest
import torch

from tests.conftest import ROOT, run_up2
from up2core.engine.checkpoint import allow_mmengine_checkpoints


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _user_error(result, *fragments):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stderr.startswith('up2: error: '), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    return result


def test_version_and_help():
    assert _ok(run_up2('--version')).stdout.startswith('up2 0.')
    help_text = _ok(run_up2('--help')).stdout
    for command in ('train', 'test', 'plugins', 'registry', 'data'):
        assert command in help_text


def test_plugins_lists_names_hooks_and_failures():
    out = _ok(run_up2('plugins', sets=('toy', 'broken'))).stdout
    assert 'toy  [loaded]  up2-toy 0.1.0  api ?  -> up2_toy' in out
    assert "warning: declares no plugin API version (add UP2_PLUGIN_API = '1.6'" in out
    assert 'hooks: up2_config_dirs, up2_register' in out
    assert 'tasks: toy' in out and 'models: ToyRegressor' in out
    assert 'broken  [failed]  up2-broken-fixture 0.1.0' in out
    assert "error: ModuleNotFoundError: No module named 'up2_this_dependency_does_not_exist'" in out


def test_plugins_json():
    data = json.loads(_ok(run_up2('plugins', '--json', sets=('toy',))).stdout)
    toy = next(p for p in data if p['name'] == 'toy')
    assert toy['registered']['datasets'] == ['ToyVectors'] and toy['status'] == 'loaded'


def test_strict_plugins_turns_a_failure_into_an_exit_code():
    _user_error(run_up2('plugins', sets=('toy', 'broken'), env={'UP2_STRICT_PLUGINS': '1'}),
                "UP2 plugin 'broken'", 'UP2_STRICT_PLUGINS=1')


def test_duplicate_task_names_stop_the_cli_naming_both_plugins():
    _user_error(run_up2('registry', 'tasks', sets=('toy', 'duplicate')),
                "'toy' is registered twice", "by 'toy'", "by 'duplicate'")


def test_registry_lists_names_with_their_owner():
    out = _ok(run_up2('registry', 'tasks', sets=('toy',))).stdout
    assert 'tasks (6):' in out and 'toy  [toy]' in out
    for task in ('classification', 'retrieval', 'detection', 'segmentation', 'captioning'):
        assert f'{task}  [{task}]' in out
    data = json.loads(_ok(run_up2('registry', '--json', sets=('toy',))).stdout)
    assert data['models']['ToyRegressor'] == 'toy'
    assert data['models']['UP2Generalist'] == 'up2core'
    assert 'toy_regression' in _ok(run_up2('registry', 'configs', sets=('toy',))).stdout


def test_unknown_registry_kind_suggests_close_names():
    _user_error(run_up2('registry', 'datset'), "No registry called 'datset'", "'datasets'")


def test_missing_config_file():
    _user_error(run_up2('train', 'no_such_config.py'), "Config 'no_such_config.py' not found")


def test_malformed_and_unknown_cfg_options(tmp_path):
    _user_error(run_up2('train', 'toy_regression', '--cfg-options', 'train_cfg.max_iters',
                        sets=('toy',)), 'Malformed --cfg-options item')
    _user_error(run_up2('train', 'toy_regression', '--cfg-options', 'train_cfg.max_iter=2',
                        sets=('toy',)), 'Did you mean train_cfg.max_iters')


def test_unknown_type_in_config_lists_close_matches(tmp_path):
    _user_error(run_up2('train', 'toy_regression', '--work-dir', str(tmp_path),
                        '--cfg-options', 'model.type=ToyRegresor', sets=('toy',)),
                "'ToyRegresor' is not in the up2core::model registry", "'ToyRegressor'")


@pytest.mark.parametrize('option,fragment', [
    ('optim_wrapper.optimizer.type=MTAdamWW', "Did you mean 'MTAdamW'"),
    ("model.tasks.classification=dict(type='clasification')", "Did you mean 'classification'"),
    ('train_dataloader.retrieval.dataset.pipeline.3.task=retrievl', "set it to 'retrieval'"),
])
def test_config_mistakes_are_one_line_before_the_runner_is_built(tmp_path, option, fragment):
    result = _user_error(run_up2('train', 'up2_tiny_shapes', '--work-dir', str(tmp_path),
                                 '--cfg-options', option), fragment)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'up2_tiny_shapes.py').exists()  # failed before the Runner started


def test_shapes_data_command(tmp_path):
    out = _ok(run_up2('data', 'shapes', '--out', str(tmp_path / 's'), '--num-train', '6',
                      '--num-val', '3', '--image-size', '64'))
    assert json.loads(out.stdout)['splits']['val']['images'] == 3
    _user_error(run_up2('data', 'shapes', '--out', str(tmp_path / 's'), '--num-train', '7'),
                '--overwrite')


@pytest.mark.slow
def test_train_checkpoints_resume_and_test(tmp_path):
    work = tmp_path / 'work'
    _ok(run_up2('train', 'toy_regression', '--work-dir', str(work), '--cfg-options',
                'train_cfg.max_iters=6', sets=('toy',)))
    assert {p.name for p in work.glob('iter_*.pth')} == {'iter_3.pth', 'iter_6.pth'}

    # --resume with a path continues from that checkpoint's iteration
    resumed = _ok(run_up2('train', 'toy_regression', '--work-dir', str(work), '--resume',
                          str(work / 'iter_3.pth'), '--cfg-options', 'train_cfg.max_iters=9',
                          sets=('toy',)))
    assert 'up2: train: resumed at step 3' in resumed.stderr, resumed.stderr[-3000:]
    log = max(work.glob('*/*.log')).read_text()  # the resumed run's log file
    assert 'resumed epoch: 0, iter: 3' in log
    assert 'Iter(train) [3/9]' not in log and 'Iter(train) [6/9]' in log
    allow_mmengine_checkpoints()
    state = torch.load(work / 'iter_9.pth', weights_only=True)
    assert state['meta']['iter'] == 9

    # --resume without a value picks the last checkpoint of the work dir
    again = _ok(run_up2('train', 'toy_regression', '--work-dir', str(work), '--resume',
                        '--cfg-options', 'train_cfg.max_iters=12', sets=('toy',)))
    assert 'up2: train: resumed at step 9' in again.stderr, again.stderr[-3000:]

    metrics_path = tmp_path / 'metrics.json'
    _ok(run_up2('test', 'toy_regression', str(work / 'iter_12.pth'), '--work-dir', str(work),
                '--out-metrics', str(metrics_path), sets=('toy',)))
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics) == {'mse'} and metrics['mse'] >= 0

    _user_error(run_up2('test', 'toy_regression', str(work / 'nope.pth'), sets=('toy',)),
                'does not exist')


@pytest.mark.slow
def test_mim_style_tools_script_trains_like_the_cli(tmp_path):
    """``mim train up2 CONFIG`` runs ``<package>/.mim/tools/train.py CONFIG --launcher none``."""
    import up2

    script = up2.CONFIG_DIR.parent / 'tools' / 'train.py'
    assert script.is_file()
    import sys

    _ok(run_up2('toy_regression', '--launcher', 'none', '--work-dir', str(tmp_path),
                '--cfg-options', 'train_cfg.max_iters=3', sets=('toy',),
                executable=[sys.executable, str(script)]))
    assert (tmp_path / 'iter_3.pth').is_file()


def test_amp_on_cpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: --amp is valid here')
    _user_error(run_up2('train', 'toy_regression', '--amp', '--work-dir', str(tmp_path),
                        sets=('toy',)), '--amp needs a CUDA device')


def test_repository_layout_is_what_the_readme_promises():
    for path in ('scripts/bootstrap.sh', 'scripts/install_mmcv.sh', '.ci/run', 'tox.ini',
                 'examples/plugin-template/pyproject.toml', 'up2/.mim/configs', 'up2/.mim/tools'):
        assert (ROOT / path).exists(), path
