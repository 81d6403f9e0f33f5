"""The "Train on your own data" guide (docs/own-data.md), executed: every shell command of it, in
order, on a small example dataset in a user's layouts (COCO json with non-contiguous ids and names
absent from Shapes, an image-folder tree with classes.txt, captions JSON Lines):
``up2 data example`` -> ``check`` -> ``stats`` -> ``browse`` -> zero-shot ``up2 test`` from a
Shapes checkpoint -> finetune with ``--load-from`` -> ``up2 test`` -> ``up2 infer``.

The main job's config and checkpoint are swapped for the tiny generalist's (tests/conftest.py),
the example data is made smaller and the finetuning shorter; nothing else changes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_up2
from up2core.data.example import NEW_NAMES

GUIDE = ROOT / 'docs' / 'own-data.md'


def guide_commands() -> list[str]:
    """The shell commands of the guide's ```bash blocks, in order."""
    blocks = re.findall(r'```bash\n(.*?)```', GUIDE.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith('#')]


def test_the_guide_names_every_step():
    commands = guide_commands()
    firsts = [' '.join(shlex.split(c)[:3]) for c in commands]
    assert firsts == ['up2 data example', 'up2 data check', 'up2 data stats', 'up2 data browse',
                      'up2 test up2_tiny_shapes_generalist', 'up2 train up2_tiny_shapes_generalist',
                      'up2 test up2_tiny_shapes_generalist',
                      'up2 infer up2_tiny_shapes_generalist']


@pytest.mark.slow
def test_every_command_of_the_guide_runs(tiny_generalist, tmp_path):
    config, checkpoint, _ = tiny_generalist
    swaps = {'up2_tiny_shapes_generalist': str(config),
             'work_dirs/demo/iter_260.pth': str(checkpoint),
             'max_iters=120': 'max_iters=4', 'iter_120.pth': 'iter_4.pth',
             'example --out mydata': 'example --out mydata --num-train 16 --num-val 6'}
    results = {}
    for command in guide_commands():
        for old, new in swaps.items():
            command = command.replace(old, new)
        args = shlex.split(command)
        assert args[0] == 'up2'
        result = run_up2(*args[1:], cwd=tmp_path, timeout=900)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-4000:])
        assert 'Traceback' not in result.stderr, (command, result.stderr[-4000:])
        results[' '.join(args[1:3])] = results.get(' '.join(args[1:3]), []) + [result]
    data = tmp_path / 'mydata'
    names = [name for name, _ in NEW_NAMES.values()]

    # check, stats, browse
    assert '0 errors' in results['data check'][0].stdout
    assert json.loads((data / 'check.json').read_text())['errors'] == 0
    assert (data / 'stats.png').stat().st_size > 10_000
    stats = json.loads((data / 'stats.json').read_text())
    assert set(stats['detection']['train']['instances']) == set(names)
    assert sorted(p.name for p in (data / 'browse').iterdir()) == [
        'captioning', 'classification', 'detection', 'retrieval', 'segmentation']

    # pycocotools' progress prints stay off the console
    for result in results['test ' + str(config)] + results['train ' + str(config)]:
        assert 'loading annotations into memory' not in result.stdout + result.stderr

    # zero-shot: the user's names, per-class AP and the confusion matrix
    zero_shot = tmp_path / 'work_dirs' / 'mydata_zero_shot'
    summary = json.loads((zero_shot / 'test_summary.json').read_text())
    assert sorted(summary['tasks']) == ['captioning', 'classification', 'detection',
                                        'retrieval', 'segmentation']
    for metric in ('bbox', 'segm'):
        task = 'detection' if metric == 'bbox' else 'segmentation'
        per_class = json.loads((zero_shot / 'reports' / task /
                                f'per_class_{metric}_ap.json').read_text())
        assert sorted(per_class) == sorted(names)
        assert sum(row['ground_truth'] for row in per_class.values()) > 0
    confusion = json.loads((zero_shot / 'reports' / 'classification' /
                            'confusion_matrix.json').read_text())
    readable = (data / 'cls' / 'classes.txt').read_text().split()
    assert confusion['classes'][:3] == readable[:3]
    assert sum(map(sum, confusion['matrix'])) == 6  # every val image, once
    assert (zero_shot / 'reports' / 'classification' / 'confusion_matrix.png').is_file()

    # finetuning: a new class list re-initialises nothing
    train = results['train ' + str(config)][0]
    assert re.search(r'load report of .*: \d+ loaded, 0 missing, 0 unexpected, '
                     r'0 shape-mismatched, 0 re-initialised', train.stderr), train.stderr[-3000:]
    report = json.loads((tmp_path / 'work_dirs' / 'mydata' / 'load_report.json').read_text())
    assert report['reinitialised'] == [] and report['loaded'] > 100

    # the checkpoint knows its data, and infer says so
    import torch

    from up2core.engine.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    saved = torch.load(tmp_path / 'work_dirs' / 'mydata' / 'iter_4.pth', weights_only=True)
    card = saved['meta']['up2_card']
    assert card['data']['name'] == 'mydata'
    assert card['names']['detection']['classes'] == names
    assert 'detection/bbox_mAP' in card['metrics']
    infer = results['infer ' + str(config)][0]
    assert "model: Trained on 'mydata'" in infer.stderr
    assert 'detection, segmentation know: coin, tile' in infer.stderr
    lines = (tmp_path / 'work_dirs' / 'mydata_infer' / 'results.jsonl').read_text().splitlines()
    assert len(lines) == 6 and all('results' in json.loads(line) for line in lines)


@pytest.mark.slow
def test_a_checkpoint_of_another_config_is_refused_unless_partial(tiny_generalist, tmp_path):
    """The generalist's checkpoint under the regions config (another pixel decoder): the mask
    head would stay random and mask AP read 0.0; it is one line naming the tensors instead."""
    _, checkpoint, images = tiny_generalist
    image = str(sorted(Path(images).iterdir())[0])
    for command in (('test', 'up2_tiny_shapes_regions', str(checkpoint), '--work-dir',
                     str(tmp_path / 'w')),
                    ('infer', 'up2_tiny_shapes_regions', str(checkpoint), image)):
        result = run_up2(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith('up2: error')]
        assert len(errors) == 1 and 'Traceback' not in result.stderr
        assert "does not fit this config" in errors[0]
        assert re.search(r'\d+ missing, \d+ unexpected, 2 shape-mismatched', errors[0])
        assert 'pixel_decoder' in errors[0] and '--partial-load' in errors[0]
    result = run_up2('infer', 'up2_tiny_shapes_regions', str(checkpoint), image,
                     '--partial-load', '--json', cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)['results']['detection']
