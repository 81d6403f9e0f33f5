"""The tiny generalist trains, tests and infers from the CLI (a short version of the main job)."""

import json

import pytest

from tests.conftest import ROOT, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_shapes_e2e.py'


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _scalars(work_dir):
    (path,) = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_joint_training_lowers_both_losses_then_test_and_infer(tmp_path):
    work = tmp_path / 'work'
    trained = _ok(run_up2('train', str(CONFIG), '--work-dir', str(work), cwd=tmp_path,
                          timeout=900))
    # the console: progress, result and files; the config and MMEngine's INFO in the log only
    console = trained.stdout + trained.stderr
    assert 'Config:' not in console and 'paramwise_options' not in console, console[:3000]
    assert 'requires_grad=False' not in console and 'UserWarning' not in console
    assert 'up2: train [' in console and 'eta ' in console and 'up2: evaluate' in console
    assert 'Files:' in trained.stdout and 'checkpoint' in trained.stdout
    assert len(console.splitlines()) < 60, console
    (log,) = work.glob('*/*.log')
    assert 'Config:' in log.read_text()  # nothing lost: it is all in the log file
    logs = [entry for entry in _scalars(work) if 'loss' in entry]
    assert len(logs) >= 6
    for key in ('loss_cls', 'loss_i2t', 'loss_t2i'):
        values = [entry[key] for entry in logs if key in entry]
        assert values[-1] < values[0], (key, values)
    validation = [entry for entry in _scalars(work) if 'classification/top1' in entry][-1]
    assert {'retrieval/i2t_R@1', 'retrieval/t2i_R@10', 'classification/top5'} <= set(validation)

    checkpoint = work / 'iter_40.pth'
    metrics_path = tmp_path / 'metrics.json'
    _ok(run_up2('test', str(CONFIG), str(checkpoint), '--work-dir', str(work),
                '--out-metrics', str(metrics_path), cwd=tmp_path, timeout=900))
    metrics = json.loads(metrics_path.read_text())
    assert metrics['classification/top1'] == pytest.approx(validation['classification/top1'])
    assert 0 <= metrics['retrieval/i2t_R@1'] <= 100

    # a new image, never seen in training or validation
    from up2core.data.shapes import ShapesSpec, generate_shapes

    generate_shapes(tmp_path / 'fresh', ShapesSpec(num_train=0, num_val=1, image_size=64,
                                                   seed=99))
    image = tmp_path / 'fresh' / 'images' / 'val' / '000000.png'
    out = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--task',
                      'classification', '--json', cwd=tmp_path))
    result = json.loads(out.stdout)
    assert result['task'] == 'classification' and len(result['classes']) == 5
    assert result['scores'] == sorted(result['scores'], reverse=True)
    texts = ['a large red circle', 'two small blue squares', 'a green star']
    out = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--task', 'retrieval',
                      '--texts', *texts, '--json', cwd=tmp_path))
    ranked = json.loads(out.stdout)
    assert sorted(ranked['texts']) == sorted(texts)
    assert sum(ranked['scores']) == pytest.approx(1.0, abs=1e-4)

    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'not an image')
    bad = run_up2('infer', str(CONFIG), str(checkpoint), str(corrupt), '--task',
                  'classification', cwd=tmp_path)
    assert bad.returncode == 2 and 'corrupt.png' in bad.stderr, bad.stderr[-2000:]
