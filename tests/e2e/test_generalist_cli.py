"""The main job from the CLI, shortened: all five tasks trained on shared images, tested, and
`up2 infer` with every task on one image and on a folder (a broken image in it, results
streamed to JSON Lines, an interrupted run resumed)."""

import io
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from PIL import Image

from tests.conftest import ROOT, UP2, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_generalist_e2e.py'
TASKS = {'classification', 'retrieval', 'detection', 'segmentation', 'captioning'}


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('generalist_cli')
    work = tmp / 'work'
    train = _ok(run_up2('train', str(CONFIG), '--work-dir', str(work), cwd=tmp, timeout=900))
    assert "mode='shared'" not in train.stderr  # no complaint about unequal images
    (tmp / 'train_stdout.txt').write_text(train.stdout)
    return tmp, work / 'iter_4.pth'


def _val(tmp, index):
    return tmp / 'data' / 'shapes_generalist_e2e' / 'images' / 'val' / f'{index:06d}.png'


@pytest.mark.slow
def test_shared_training_evaluates_every_task_and_prints_the_targets_table(trained):
    tmp, checkpoint = trained
    metrics = json.loads((checkpoint.parent / 'metrics.json').read_text())
    assert {key.split('/')[0] for key in metrics} - {'iter'} == TASKS
    printed = (tmp / 'train_stdout.txt').read_text()
    assert 'Validation after 4 iterations' in printed
    assert 'captioning/CIDEr' in printed and '>= 200.00' in printed
    assert '7 targets: ' in printed  # four steps meet none of the main job's targets
    for key in ('classification/top1', 'retrieval/i2t_R@1', 'detection/bbox_mAP',
                'segmentation/segm_mAP', 'captioning/CIDEr'):
        assert key in metrics


@pytest.mark.slow
def test_infer_without_task_runs_every_task_on_one_image(trained, tmp_path):
    tmp, checkpoint = trained
    image = _val(tmp, 0)
    printed = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--texts',
                          'a red circle', 'two blue squares', '--out', str(tmp_path / 'vis.png'),
                          cwd=tmp, timeout=300)).stdout
    lines = printed.splitlines()
    assert lines[0] == str(image)
    assert [line.strip() for line in lines if line.strip().startswith('[')] == \
        [f'[{task}]' for task in ('classification', 'retrieval', 'detection', 'segmentation',
                                  'captioning')]
    assert Image.open(tmp_path / 'vis.png').width > Image.open(image).width * 3
    record = json.loads(_ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image),
                                    '--json', cwd=tmp, timeout=300)).stdout)
    assert set(record['results']) == TASKS - {'retrieval'}  # no texts: no ranking
    assert len(record['results']['classification']['classes']) == 5
    assert isinstance(record['results']['captioning']['caption'], str)


@pytest.mark.slow
def test_infer_a_folder_with_a_broken_image_streams_lines_and_resumes(trained, tmp_path):
    tmp, checkpoint = trained
    folder = tmp_path / 'images'
    folder.mkdir()
    for index in range(5):
        shutil.copy(_val(tmp, index), folder / f'{index:02d}.png')
    (folder / '02.png').write_bytes(b'broken')
    out = tmp_path / 'out'
    args = ['infer', str(CONFIG), str(checkpoint), str(folder), '--out', str(out),
            '--batch-size', '2']
    first = run_up2(*args, cwd=tmp, timeout=300)
    assert first.returncode == 1, first.stderr[-3000:]  # it ran through; one image skipped
    assert '[infer] 5/5 images' in first.stderr and 'images/s' in first.stderr
    assert "could not read image" in first.stderr and '02.png' in first.stderr
    assert first.stderr.splitlines()[-1].startswith('up2: infer: 4 images answered, 1 skipped')
    lines = [json.loads(line) for line in (out / 'results.jsonl').read_text().splitlines()]
    assert [line['image'].rsplit('/', 1)[-1] for line in lines] == \
        ['00.png', '01.png', '02.png', '03.png', '04.png']
    assert 'error' in lines[2] and 'results' not in lines[2]
    for line in lines[:2] + lines[3:]:
        assert set(line['results']) == TASKS - {'retrieval'}
        assert Image.open(line['visualisation']).width > 128
    # an interrupted run: two complete lines and a cut third one
    text = (out / 'results.jsonl').read_text().splitlines(keepends=True)
    (out / 'results.jsonl').write_text(''.join(text[:2]) + text[2][:20])
    again = run_up2(*args, cwd=tmp, timeout=300)
    assert again.returncode == 2 and '--resume' in again.stderr
    resumed = run_up2(*args, '--resume', cwd=tmp, timeout=300)
    assert resumed.returncode == 1 and '2 of 5 images are in' in resumed.stderr
    records = [json.loads(line) for line in (out / 'results.jsonl').read_text().splitlines()]
    assert [r['image'].rsplit('/', 1)[-1] for r in records] == \
        ['00.png', '01.png', '02.png', '03.png', '04.png']
    assert records[:2] == lines[:2]


@pytest.mark.slow
def test_infer_killed_mid_folder_and_resumed_answers_every_image_exactly_once(trained,
                                                                                tmp_path):
    """A real SIGKILL of `up2 infer` after a few images, then --resume: one line per image,
    none twice, none missing; odd images among them (1 x 1, a 3-pixel-wide grey strip, a
    truncated JPEG, a text file named on the command line) are answered or skipped, never the
    end of the run."""
    tmp, checkpoint = trained
    folder = tmp_path / 'images'
    folder.mkdir()
    for index in range(8):
        shutil.copy(_val(tmp, index), folder / f'{index:02d}.png')
    Image.new('RGB', (1, 1), (200, 10, 10)).save(folder / '08_one_pixel.png')
    Image.new('L', (3, 700), 90).save(folder / '09_strip.png')
    buffer = io.BytesIO()
    Image.open(_val(tmp, 0)).convert('RGB').save(buffer, format='JPEG')
    (folder / '10_truncated.jpg').write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 3])
    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image')
    out = tmp_path / 'out'
    args = ['infer', str(CONFIG), str(checkpoint), str(folder), str(notes), '--out', str(out),
            '--batch-size', '1']
    results = out / 'results.jsonl'
    env = {k: v for k, v in os.environ.items() if not k.startswith('UP2_')}
    process = subprocess.Popen([str(UP2), *args], cwd=tmp, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if results.exists() and results.read_text().count('\n') >= 3:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    before = results.read_text().count('\n')
    assert 3 <= before < 12
    resumed = run_up2(*args, '--resume', cwd=tmp, timeout=300)
    assert resumed.returncode == 1, resumed.stderr[-3000:]  # two inputs are not images
    assert f'{before} of 12 images are in' in resumed.stderr
    assert resumed.stderr.splitlines()[-1].startswith(
        f'up2: infer: {12 - before - 2} images answered, 2 skipped')
    records = [json.loads(line) for line in results.read_text().splitlines()]
    names = [record['image'].rsplit('/', 1)[-1] for record in records]
    assert sorted(names) == sorted([f'{i:02d}.png' for i in range(8)] + [
        '08_one_pixel.png', '09_strip.png', '10_truncated.jpg', 'notes.txt'])  # each once
    skipped = {name for name, record in zip(names, records) if 'error' in record}
    assert skipped == {'10_truncated.jpg', 'notes.txt'}
    for name, record in zip(names, records):
        if name not in skipped:
            assert set(record['results']) == TASKS - {'retrieval'}, name


@pytest.mark.slow
def test_shared_image_evaluation_gives_the_metrics_of_task_by_task_evaluation(trained):
    tmp, checkpoint = trained
    metrics = {}
    for name, options in (('shared', []), ('each', ['--cfg-options',
                                                    'test_cfg.shared_images=False'])):
        out = tmp / f'metrics_{name}.json'
        _ok(run_up2('test', str(CONFIG), str(checkpoint), '--work-dir', str(tmp / name),
                    '--out-metrics', str(out), *options, cwd=tmp, timeout=600))
        metrics[name] = json.loads(out.read_text())
    shared, each = metrics['shared'], metrics['each']
    assert set(shared) == set(each) and {k.split('/')[0] for k in shared} == TASKS
    for key, value in shared.items():
        if value == value:  # not NaN
            assert value == pytest.approx(each[key], abs=1e-4), key
