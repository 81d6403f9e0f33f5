"""Captioning from the CLI: joint training with classification, test, infer with --beam."""

import json

import pytest

from tests.conftest import ROOT, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_captioning_e2e.py'


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('captioning_cli')
    work = tmp / 'work'
    _ok(run_up2('train', str(CONFIG), '--work-dir', str(work), cwd=tmp, timeout=900))
    return tmp, work / 'iter_6.pth'


@pytest.mark.slow
def test_train_and_test_report_caption_metrics_next_to_the_other_task(trained):
    tmp, checkpoint = trained
    metrics = json.loads((checkpoint.parent / 'metrics.json').read_text())
    for key in ('captioning/BLEU-4', 'captioning/CIDEr', 'captioning/ROUGE-L',
                'classification/top1'):
        assert key in metrics, sorted(metrics)
    assert 0 <= metrics['captioning/BLEU-1'] <= 100
    out = tmp / 'test_metrics.json'
    _ok(run_up2('test', str(CONFIG), str(checkpoint), '--out-metrics', str(out),
                '--work-dir', str(tmp / 'test'), cwd=tmp, timeout=600))
    tested = json.loads(out.read_text())
    assert tested['captioning/CIDEr'] == pytest.approx(metrics['captioning/CIDEr'])


@pytest.mark.slow
def test_infer_prints_a_caption_and_json_gives_its_score(trained):
    tmp, checkpoint = trained
    image = tmp / 'data' / 'shapes_captioning_e2e' / 'images' / 'val' / '000000.png'
    printed = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--task',
                          'captioning', '--beam', '3', cwd=tmp, timeout=300)).stdout
    lines = printed.splitlines()
    assert lines[0].endswith('[captioning]') and lines[1].strip() and 'score' in lines[2]
    result = json.loads(_ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image),
                                    '--task', 'captioning', '--json', cwd=tmp,
                                    timeout=300)).stdout)
    assert result['task'] == 'captioning' and isinstance(result['caption'], str)
    assert result['score'] <= 0


@pytest.mark.slow  # trains a model first (module fixture)
def test_out_on_a_folder_draws_a_task_without_a_drawing_of_its_own(trained):
    """Captioning draws nothing itself: --out gives the input with its caption beneath, and
    the JSON Lines, instead of stopping at the first image."""
    tmp, checkpoint = trained
    folder = tmp / 'data' / 'shapes_captioning_e2e' / 'images' / 'val'
    out = tmp / 'captions_out'
    _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(folder), '--task', 'captioning',
                '--out', str(out), cwd=tmp, timeout=300))
    images = sorted(folder.glob('*.png'))
    lines = [json.loads(line) for line in (out / 'results.jsonl').read_text().splitlines()]
    assert len(lines) == len(images)
    assert all(isinstance(line['results']['captioning']['caption'], str) for line in lines)
    drawn = sorted(out.glob('*.png'))
    assert [p.name for p in drawn] == [p.name for p in images]
    from PIL import Image

    with Image.open(drawn[0]) as picture:
        assert picture.height > 320  # the input tile, then the caption's lines beneath it


def test_a_beam_size_below_one_is_a_user_error(trained):
    tmp, checkpoint = trained
    image = tmp / 'data' / 'shapes_captioning_e2e' / 'images' / 'val' / '000000.png'
    result = run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--task', 'captioning',
                     '--beam', '0', cwd=tmp, timeout=300)
    assert result.returncode == 2 and result.stderr.startswith('up2: error: --beam 0')
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('args,fragment', [
    (('--task', 'captionning'), '--task captionning: the model has no such task'),
])
def test_infer_on_a_multi_task_model_needs_an_existing_task(trained, args, fragment):
    tmp, checkpoint = trained
    image = tmp / 'data' / 'shapes_captioning_e2e' / 'images' / 'val' / '000000.png'
    result = run_up2('infer', str(CONFIG), str(checkpoint), str(image), *args, cwd=tmp,
                     timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1:] == [f'up2: error: {fragment}'] \
        or fragment in result.stderr
    assert 'Traceback' not in result.stderr and result.stdout == ''
