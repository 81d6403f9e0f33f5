"""Finetuning on new data without forgetting, from the CLI: ``--replay`` keeps the config's own
tasks training (and evaluated) on its own data beside the user's, ``--freeze`` keeps modules
bit-identical to the checkpoint, ``--distill`` adds each task a term from the base's outputs."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_up2
from up2core.data.example import write_example_data

TASKS = ('captioning', 'classification', 'detection', 'retrieval', 'segmentation')


@pytest.mark.slow
def test_finetune_with_replay_distillation_and_a_frozen_backbone_and_text_encoder(
        tiny_generalist, tmp_path):
    config, checkpoint, val_images = tiny_generalist
    cwd = val_images.parents[3]  # where the fixture's config finds its Shapes images
    example = write_example_data(tmp_path / 'mydata', num_train=8, num_val=4)
    regions = tmp_path / 'regions.yaml'  # detection + segmentation on the user's names
    regions.write_text(example.read_text().split('classification:')[0]
                       .replace('path: .', f'path: {example.parent}'))
    work = tmp_path / 'ft'
    result = run_up2('train', str(config), '--load-from', str(checkpoint), '--data', str(regions),
                     '--replay', '1', '--freeze', 'image_encoder.backbone', 'text_encoder',
                     '--distill', '1', '--work-dir', str(work), '--cfg-options', 'max_iters=3',
                     'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3',
                     cwd=cwd, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((work / 'metrics.json').read_text())
    # every task of one step in 2 (the default), the user's and the replayed, was distilled
    steps = [json.loads(line) for line in (work / 'steps.jsonl').read_text().splitlines()]
    trained = {key.split('/')[0] for step in steps for key in step if key.endswith('/loss')}
    assert {'detection', 'segmentation', 'replay_captioning'} <= trained
    for step in steps:
        for task in trained & {key.split('/')[0] for key in step}:
            distilled = f'{task}/loss_distill' in step
            assert distilled == (step['step'] % 2 == 1), (task, step['step'], sorted(step))
    assert any(step[key] > 0 for step in steps for key in step if key.endswith('loss_distill'))
    # the user's tasks on the user's val set, and the config's tasks on its own: forgetting shows
    assert {'detection/bbox_mAP', 'segmentation/segm_mAP'} <= set(metrics)
    for key in ('replay_classification/top1', 'replay_retrieval/i2t_R@1',
                'replay_detection/bbox_mAP', 'replay_segmentation/segm_mAP',
                'replay_captioning/CIDEr'):
        assert key in metrics, (key, sorted(metrics))
    base = torch.load(checkpoint, map_location='cpu', weights_only=False)
    finetuned = torch.load(work / 'iter_3.pth', map_location='cpu', weights_only=False)
    start, end = base['state_dict'], finetuned['state_dict']
    frozen = [k for k in start if k.startswith(('image_encoder.backbone.', 'text_encoder.'))]
    assert frozen and all(torch.equal(start[k], end[k]) for k in frozen)
    trained = [k for k in start if k.startswith('decoder.') and k in end]
    assert any(not torch.equal(start[k], end[k]) for k in trained)
    # the finetune stays a generalist: the tasks it dropped keep their own tensors (the caption
    # vocabulary, each temperature), its card lists the base and every name of both
    assert set(start) <= set(end)
    assert torch.equal(end['tasks.captioning.vocab_ids'], start['tasks.captioning.vocab_ids'])
    card = finetuned['meta']['up2_card']
    assert card['base']['checkpoint'] == str(checkpoint)
    # what it replayed, recorded with it: half the steps, the base's step, its data per task
    assert card['replay']['weight'] == 1.0 and card['replay']['share_of_steps'] == 0.5
    assert card['replay']['mode'] == 'shared'
    assert sorted(card['replay']['tasks']) == [f'replay_{t}' for t in sorted(
        ('classification', 'retrieval', 'detection', 'segmentation', 'captioning'))]
    assert card['replay']['tasks']['replay_detection']['ann_file'].endswith('.json')
    assert card['base']['metrics'].keys() == base['meta']['up2_card']['metrics'].keys()
    assert card['names']['classification'] == base['meta']['up2_card']['names']['classification']
    assert card['names']['detection']['classes'] != \
        base['meta']['up2_card']['names']['detection']['classes']  # the user's names
    # what it kept of the base, measured on the base's own val data, printed and saved
    shares = 0
    for name in ('classification/top1', 'classification/top5', 'captioning/CIDEr',
                 'detection/bbox_mAP', 'retrieval/i2t_R@5'):
        before = base['meta']['up2_card']['metrics'][name]
        assert metrics[f'base/{name}'] == pytest.approx(before)
        if before:  # (the 4-step base scores 0 on some: no share of that)
            shares += 1
            assert metrics[f'kept/{name}'] == pytest.approx(metrics[f'replay_{name}'] / before)
        else:
            assert f'kept/{name}' not in metrics
    assert shares >= 2
    assert 'What the base knew, before -> after' in result.stdout
    assert 'kept/' not in result.stdout.split('What the base knew')[0]  # not in the table too
    assert '% kept)' in result.stdout.split('What the base knew')[1]
    # and the old tasks score from the finetuned file alone, with the base's config
    scored = run_up2('test', str(config), str(work / 'iter_3.pth'), '--work-dir',
                     str(tmp_path / 'old'), '--out-metrics', str(tmp_path / 'old.json'),
                     cwd=cwd, timeout=900)
    assert scored.returncode == 0, scored.stderr[-3000:]
    old = json.loads((tmp_path / 'old.json').read_text())
    assert {'classification/top1', 'captioning/CIDEr', 'retrieval/i2t_R@1'} <= set(old)
    # one call among the old and the new names
    image = sorted(val_images.iterdir())[0]
    answered = run_up2('infer', str(config), str(work / 'iter_3.pth'), str(image), '--task',
                       'detection', '--classes', 'known', '--json', cwd=cwd, timeout=600)
    assert answered.returncode == 0, answered.stderr[-3000:]
    found = json.loads(answered.stdout)
    union = card['names']['detection']['classes'] + card['base']['names']['detection']['classes']
    assert found['task'] == 'detection' and set(found['classes']) <= set(union)


def test_remedy_mistakes_are_one_error_line(tmp_path):
    from tests.conftest import TINY_GENERALIST

    for args, message in (
            (['--freeze', 'image_encoder.bakbone'],
             "up2: error: model.freeze: 'image_encoder.bakbone' is not a submodule; "
             "'image_encoder' has backbone, neck, pool, proposal_generator"),
            (['--replay', '1'], 'up2: error: --replay mixes the config\'s own data back into '
                                'training on yours: give your data with --data'),
            (['--plain-finetune'], 'up2: error: --plain-finetune is a finetune on your data: '
                                   'give it with --data (and the checkpoint with --load-from)'),
            (['--keep-names'], "up2: error: --keep-names keeps the config's names beside "
                               'those of your data: give your data with --data'),
            (['--anchor', '2'], 'up2: error: --anchor 2: give a share in [0, 1] (0: off)'),
            (['--distill', '1'], 'up2: error: --distill 1 keeps the outputs of the checkpoint a '
                                 'run starts from: give it with --load-from CKPT'),
            (['--distill', '-1'], 'up2: error: --distill -1: give a weight >= 0 (0: off; the '
                                  'default of a finetune is 10)'),
            (['--no-distill-image'], 'up2: error: --no-distill-image says how to distil: give '
                                     'it with --distill W (or a finetune that distils by '
                                     'default)'),
            (['--distill-tasks', 'replay_*'], 'up2: error: --distill-tasks says how to distil: '
             'give it with --distill W (or a finetune that distils by default)')):
        result = run_up2('train', str(TINY_GENERALIST), '--work-dir', str(tmp_path / 'w'),
                         *args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1] == message
        assert 'Traceback' not in result.stderr
    result = run_up2('train', str(TINY_GENERALIST), '--work-dir', str(tmp_path / 'w'), '--tune',
                     'decoder.layer.*', cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "up2: error: model.tune: 'decoder.layer.*' matches no parameter; parameter names look "
        'like decoder.')
