"""The counting plugin, run where UP2 and this plugin are installed (UP2's tox env `plugin`, or
UP2's own suite, which pip-installs a copy of this folder and runs these tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import up2_example_counting

from up2core.registry import DATASETS, METRICS, TASKS

JOINT_CONFIG = Path(up2_example_counting.__file__).parent / 'configs' / 'counting_shapes_joint.py'


def up2(*args, cwd):
    """The `up2` command line of this interpreter; user errors come back as status 2."""
    return subprocess.run([sys.executable, '-m', 'up2core.cli', *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from up2core.data.shapes import ShapesSpec, generate_shapes

    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root, ShapesSpec(num_train=0, num_val=6, image_size=64))
    return root


def test_plugin_is_discovered_and_listed(tmp_path):
    import up2core

    info = {p.name: p for p in up2core.list_plugins()}['counting']
    assert info.status == 'loaded' and info.distribution == 'up2-example-counting'
    assert info.registered == {'tasks': ['counting'], 'datasets': ['CocoCountDataset'],
                               'metrics': ['CountAccuracy']}
    out = up2('plugins', cwd=tmp_path).stdout
    assert 'counting  [loaded]  up2-example-counting 0.1.0' in out
    assert 'counting_shapes_joint' in up2('registry', 'configs', cwd=tmp_path).stdout


def test_dataset_counts_non_crowd_instances(shapes):
    dataset = DATASETS.build(dict(type='CocoCountDataset', data_root=str(shapes),
                                  ann_file='annotations/instances_val.json',
                                  data_prefix=dict(img='images/val/')))
    coco = json.loads((shapes / 'annotations' / 'instances_val.json').read_text())
    assert len(dataset) == len(coco['images']) == 6
    for sample in dataset:
        expected = sum(1 for a in coco['annotations']
                       if a['image_id'] == sample['img_id'] and not a.get('iscrowd'))
        assert sample['gt_count'] == expected and Path(sample['img_path']).is_file()


def test_a_broken_annotation_names_the_file_and_the_record(tmp_path):
    (tmp_path / 'bad.json').write_text(json.dumps(
        {'images': [{'id': 1, 'file_name': 'a.png'}], 'annotations': [{'id': 7, 'image_id': 2}]}))
    with pytest.raises(Exception, match=r'bad\.json: annotations\[0\] \(id 7\) refers to '
                                        r'image_id 2'):
        DATASETS.build(dict(type='CocoCountDataset', ann_file=str(tmp_path / 'bad.json')))


def test_metric_keys_carry_no_prefix_of_their_own():
    metric = METRICS.build(dict(type='CountAccuracy'))
    metric.process(None, [dict(pred_count=2, gt_count=2), dict(pred_count=1, gt_count=3)])
    assert metric.evaluate(2) == {'accuracy': 50.0, 'mae': 1.0}


def test_task_candidates_are_number_sentences_and_counts_out_of_range_are_refused():
    task = TASKS.build(dict(type='counting', max_count=3))
    assert task.sentences == ['there are zero shapes.', 'there are one shapes.',
                              'there are two shapes.', 'there are three shapes.']
    with pytest.raises(ValueError, match='more than max_count=3'):
        task.targets([type('S', (), {'gt_count': 5})()], torch.device('cpu'))


def test_trains_jointly_with_classification_then_tests_and_infers(shapes, tmp_path):
    # The packaged joint config on a few tiny images, for a few iterations.
    (tmp_path / 'tiny.py').write_text(f"""
_base_ = [{str(JOINT_CONFIG)!r}]
data_root = 'data/tiny'
prepare = dict(type='shapes', num_train=48, num_val=12, image_size=64, seed=0)
small = dict(num_workers=0, persistent_workers=False,
             dataset=dict(data_root=data_root, prepare=prepare))
train_dataloader = dict(classification=dict(batch_size=8, **small),
                        counting=dict(batch_size=8, **small))
val_dataloader = dict(classification=dict(batch_size=12, **small),
                      counting=dict(batch_size=12, **small))
test_dataloader = val_dataloader
""")
    train = up2('train', 'tiny.py', '--work-dir', 'work', '--cfg-options', 'max_iters=4',
                cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = tmp_path / 'work' / 'iter_4.pth'
    test = up2('test', 'tiny.py', str(checkpoint), '--work-dir', 'test',
               '--out-metrics', 'metrics.json', cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert {'counting/accuracy', 'counting/mae', 'classification/top1'} <= set(metrics)
    assert not any(key.count('/') > 1 for key in metrics)  # never counting/counting/...
    assert 0 <= metrics['counting/accuracy'] <= 100

    image = next((tmp_path / 'data' / 'tiny' / 'images' / 'val').iterdir())
    infer = up2('infer', 'tiny.py', str(checkpoint), str(image), '--task', 'counting', '--json',
                cwd=tmp_path)
    assert infer.returncode == 0, infer.stderr[-3000:]
    result = json.loads(infer.stdout)
    assert result['task'] == 'counting' and 0 <= result['count'] <= 4
    assert result['sentence'] == f"there are {['zero', 'one', 'two', 'three', 'four'][result['count']]} shapes."
    assert sum(result['scores']) == pytest.approx(1.0, abs=1e-3)
    printed = up2('infer', 'tiny.py', str(checkpoint), str(image), '--task', 'counting',
                  cwd=tmp_path).stdout
    assert f"{result['count']}  ('{result['sentence']}'" in printed
