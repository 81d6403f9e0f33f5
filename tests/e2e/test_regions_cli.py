"""Detection and segmentation from the CLI: train, test, and infer on real photos."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_up2

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_regions_e2e.py'


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('regions_cli')
    work = tmp / 'work'
    result = _ok(run_up2('train', str(CONFIG), '--work-dir', str(work), cwd=tmp, timeout=900))
    # COCOeval's tables (every group's too) are in the log file, not on the console
    assert 'Average Precision' not in result.stdout + result.stderr
    (log,) = work.glob('*/*.log')
    assert log.read_text().count('Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all') >= 4
    return tmp, work / 'iter_6.pth'


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """Real photos from scikit-image: colour, grayscale, RGBA, and a 12-megapixel upscale."""
    import skimage.data

    folder = tmp_path_factory.mktemp('photos')
    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save(folder / 'astronaut.jpg')
    Image.fromarray(skimage.data.camera()).save(folder / 'camera_gray.png')
    rgba = np.dstack([skimage.data.coffee(), np.full((400, 600), 200, dtype=np.uint8)])
    Image.fromarray(rgba, mode='RGBA').save(folder / 'coffee_rgba.png')
    Image.fromarray(skimage.data.rocket()).resize((4000, 3000)).save(folder / 'rocket_12mp.jpg')
    return folder


@pytest.mark.slow
def test_train_then_test_reports_box_and_mask_ap_per_group(trained):
    tmp, checkpoint = trained
    metrics = json.loads((checkpoint.parent / 'metrics.json').read_text())
    for key in ('detection/bbox_mAP', 'detection/bbox_mAP_seen', 'detection/bbox_mAP_novel',
                'segmentation/segm_mAP', 'segmentation/segm_mAP_novel'):
        assert key in metrics, sorted(metrics)
    assert not any(k.startswith(('detection/coco', 'segmentation/coco')) for k in metrics)
    out = tmp / 'test_metrics.json'
    _ok(run_up2('test', str(CONFIG), str(checkpoint), '--out-metrics', str(out),
                '--work-dir', str(tmp / 'test'), cwd=tmp, timeout=600))
    tested = json.loads(out.read_text())
    assert tested['detection/bbox_mAP'] == pytest.approx(metrics['detection/bbox_mAP'])


@pytest.mark.slow
@pytest.mark.parametrize('name,size', [('astronaut.jpg', (512, 512)),
                                       ('camera_gray.png', (512, 512)),
                                       ('coffee_rgba.png', (600, 400)),
                                       ('rocket_12mp.jpg', (4000, 3000))])
def test_infer_detection_on_real_photos_draws_a_visualisation(trained, photos, tmp_path, name,
                                                              size):
    tmp, checkpoint = trained
    vis = tmp_path / 'vis.png'
    result = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(photos / name), '--task',
                         'detection', '--out', str(vis), '--json', cwd=tmp, timeout=300))
    detections = json.loads(result.stdout)
    assert detections['task'] == 'detection' and len(detections['boxes']) > 0
    width, height = size
    boxes = np.array(detections['boxes'])
    assert (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
    assert Image.open(vis).size == size


@pytest.mark.slow
def test_infer_with_new_category_names_and_masks(trained, photos):
    tmp, checkpoint = trained
    names = ['person', 'rocket', 'red star']
    result = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(photos / 'astronaut.jpg'),
                         '--task', 'segmentation', '--classes', ','.join(names), '--json',
                         cwd=tmp, timeout=300))
    found = json.loads(result.stdout)
    assert set(found['classes']) <= set(names)
    assert found['masks'][0]['size'] == [512, 512]
    printed = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(photos / 'astronaut.jpg'),
                          '--task', 'detection', cwd=tmp, timeout=300)).stdout
    assert printed.splitlines()[0].endswith('[detection]') and len(printed.splitlines()) > 1


@pytest.mark.slow
def test_infer_without_task_runs_every_task_of_the_model(trained, photos):
    tmp, checkpoint = trained
    result = _ok(run_up2('infer', str(CONFIG), str(checkpoint), str(photos / 'astronaut.jpg'),
                         '--json', cwd=tmp, timeout=300))
    record = json.loads(result.stdout)
    assert record['image'].endswith('astronaut.jpg')
    assert set(record['results']) == {'detection', 'segmentation'}
    assert record['results']['segmentation']['masks'][0]['size'] == [512, 512]


@pytest.mark.slow  # trains a model first (module fixture)
def test_empty_class_list_is_a_user_error(trained, photos):
    tmp, checkpoint = trained
    result = run_up2('infer', str(CONFIG), str(checkpoint), str(photos / 'astronaut.jpg'),
                     '--task', 'detection', '--classes', ' , ', cwd=tmp, timeout=300)
    assert result.returncode == 2 and result.stderr.startswith('up2: error: --classes')
    assert 'Traceback' not in result.stderr
