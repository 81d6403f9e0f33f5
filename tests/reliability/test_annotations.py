"""COCO instances files, valid or broken in one place: a record that cannot be used is always a
DataError that names the file and the record, never another exception; what the rules repair,
complete or leave out (:mod:`up2core.data.coco_rules`) is counted, and the reader trains on it."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from up2core.data.coco import validate_instances
from up2core.data.coco_rules import read_instances
from up2core.errors import DataError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def coco_instances(draw):
    """A valid COCO instances dict: 1-4 images, 1-3 categories, 0-8 annotations inside them."""
    images = []
    for i in range(draw(st.integers(1, 4))):
        images.append(dict(id=100 + i, file_name=f'{i}.png', width=draw(st.integers(8, 200)),
                           height=draw(st.integers(8, 200))))
    categories = [dict(id=c + 1, name=f'thing{c}') for c in range(draw(st.integers(1, 3)))]
    annotations = []
    for a in range(draw(st.integers(0, 8))):
        image = draw(st.sampled_from(images))
        x = draw(st.integers(0, image['width'] - 2))
        y = draw(st.integers(0, image['height'] - 2))
        w = draw(st.integers(1, image['width'] - x))
        h = draw(st.integers(1, image['height'] - y))
        if draw(st.booleans()):
            seg = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        else:
            seg = {'size': [image['height'], image['width']],
                   'counts': [image['height'] * image['width']]}
        annotations.append(dict(id=a, image_id=image['id'], bbox=[x, y, w, h], area=w * h,
                                category_id=draw(st.sampled_from(categories))['id'],
                                segmentation=seg, iscrowd=0))
    return dict(images=images, annotations=annotations, categories=categories)


@given(coco_instances())
@SETTINGS
def test_valid_files_pass_and_nothing_is_counted_as_left_out(data):
    assert validate_instances(data, 'x.json') == {}


@given(coco_instances())
@SETTINGS
def test_valid_files_read_back_unchanged(data):
    cleaned, rulings = read_instances(copy.deepcopy(data), 'x.json')
    assert rulings == [] and cleaned == data


def _break(data, how, index):
    """Corrupt ``data`` in one way; return the record name the message must contain."""
    anns, images = data['annotations'], data['images']
    if how.startswith('image:'):
        del images[index % len(images)][how.split(':')[1]]
        return f'images[{index % len(images)}]'
    if not anns:
        data['annotations'] = 'not a list'
        return "'annotations'"
    i = index % len(anns)
    ann = anns[i]
    if how.startswith('drop:'):
        del ann[how.split(':')[1]]
    elif how == 'unknown category':
        ann['category_id'] = 999
    elif how == 'unknown image':
        ann['image_id'] = -5
    elif how == 'bbox':
        ann['bbox'] = ann['bbox'][:3]
    elif how == 'nan':
        ann['bbox'][0] = float('nan')
    elif how == 'outside':
        image = next(im for im in images if im['id'] == ann['image_id'])
        ann['bbox'][0] = image['width'] + 3
    elif how == 'rle size':
        ann['segmentation'] = {'size': [1, 1], 'counts': 'abc'}
    elif how == 'rle counts':
        image = next(im for im in images if im['id'] == ann['image_id'])
        ann['segmentation'] = {'size': [image['height'], image['width']], 'counts': [1, 2]}
    return f'annotations[{i}]'


BREAKS = ['image:id', 'image:width', 'image:file_name', 'drop:category_id', 'drop:image_id',
          'unknown category', 'unknown image', 'bbox', 'nan', 'outside', 'rle size',
          'rle counts']


@given(coco_instances(), st.sampled_from(BREAKS), st.integers(0, 100))
@SETTINGS
def test_one_broken_record_is_named(data, how, index):
    data = copy.deepcopy(data)
    record = _break(data, how, index)
    with pytest.raises(DataError) as info:
        validate_instances(data, 'instances_x.json')
    message = str(info.value)
    assert message.startswith('instances_x.json: ') and record in message


#: one record as real exports write it -> what the rules make of it (kind, and the bbox read)
REPAIRS = {
    'zero-size box': (dict(bbox=[2, 2, 0, 3], area=0), None),
    'box past the image edge (clipped)': (dict(bbox=[-1.0, 2, 5, 4]), [0.0, 2.0, 4.0, 4.0]),
    'crowd region': (dict(iscrowd=1), [2, 2, 4, 4]),
    'area computed': (dict(area=None), [2, 2, 4, 4]),
    'box computed from its mask': (dict(bbox=None, segmentation=[[2, 2, 6, 2, 6, 6, 2, 6]]),
                                   [2.0, 2.0, 4.0, 4.0]),
    'polygon of fewer than 3 points': (dict(segmentation=[[2, 2, 6, 2, 6, 6, 2, 6], [1, 1]]),
                                       [2, 2, 4, 4]),
    'polygon past the image edge (clipped)': (
        dict(segmentation=[[-3, 2, 6, 2, 6, 6, -3, 6]]), [2, 2, 4, 4]),
}


@given(coco_instances(), st.sampled_from(sorted(REPAIRS)))
@SETTINGS
def test_what_exports_carry_is_repaired_counted_and_read(data, kind):
    image = data['images'][0]
    change, bbox = REPAIRS[kind]
    ann = dict(id=999, image_id=image['id'], category_id=data['categories'][0]['id'],
               bbox=[2, 2, 4, 4], area=16, iscrowd=0, segmentation=[[2, 2, 6, 2, 6, 6, 2, 6]])
    ann.update(change)
    ann = {k: v for k, v in ann.items() if v is not None}
    data['annotations'].append(ann)
    assert validate_instances(data, 'x.json')[kind] == 1
    cleaned, _ = read_instances(data, 'x.json')
    read = [a for a in cleaned['annotations'] if a['id'] == 999]
    assert (read[0]['bbox'] if read else None) == bbox
    if read:
        assert read[0]['area'] > 0
        for polygon in read[0].get('segmentation', []):
            assert len(polygon) >= 6 and min(polygon) >= 0


def test_the_dataset_names_the_file_and_reports_left_out_annotations(tmp_path, monkeypatch):
    import up2core.data.coco as coco
    from up2core.data.coco import CocoInstances

    logged = []  # the logger's level and handlers depend on earlier tests: read the message
    monkeypatch.setattr(coco, 'print_log', lambda message, **kwargs: logged.append(message))

    data = dict(images=[dict(id=1, file_name='a.png', width=20, height=20)],
                categories=[dict(id=1, name='thing')],
                annotations=[dict(id=1, image_id=1, category_id=1, bbox=[-1, 1, 5, 5], area=25),
                             dict(id=2, image_id=1, category_id=1, bbox=[1, 1, 0, 5], area=0),
                             dict(id=3, image_id=1, category_id=1, bbox=[1, 1, 5, 5], area=25,
                                  iscrowd=1)])
    (tmp_path / 'inst.json').write_text(json.dumps(data))
    dataset = CocoInstances(ann_file=str(tmp_path / 'inst.json'), classes=['thing'],
                            data_prefix=dict(img=''))
    instances = dataset.get_data_info(0)['instances']
    assert [i['ignore_flag'] for i in instances] == [0, 1]  # zero-area left out, crowd ignored
    assert instances[0]['bbox'] == [0.0, 1.0, 4.0, 6.0]  # clipped at the left edge
    assert any('inst.json: of 2 annotations read, ' in m and '1 x zero-size box' in m
               and '1 x box past the image edge (clipped)' in m and '1 x crowd region' in m
               for m in logged), logged
    data['annotations'][0]['bbox'] = [30, 30, 5, 5]
    (tmp_path / 'inst.json').write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"inst.json: annotations\[0\] \(id 1\): box outside its "
                                        r"image"):
        CocoInstances(ann_file=str(tmp_path / 'inst.json'), classes=['thing'])


def test_labels_follow_the_class_names_whatever_order_the_file_lists_them_in(tmp_path):
    """mmdet labels a file's categories in the file's order; an export that lists them in
    another order than their ids, or a ``classes`` in a third order, still labels each box with
    the index of its own name, and the metric scores it against that name's id."""
    from up2core.data.coco import CocoInstances
    from up2core.data.layouts import coco_categories

    cats = [dict(id=1001, name='lemon'), dict(id=7, name='brick'), dict(id=42, name='coin')]
    data = dict(images=[dict(id=1, file_name='a.png', width=40, height=40)], categories=cats,
                annotations=[dict(id=k, image_id=1, category_id=c['id'], area=25,
                                  bbox=[k * 10, 0, 5, 5]) for k, c in enumerate(cats)])
    (tmp_path / 'inst.json').write_text(json.dumps(data))
    assert coco_categories(tmp_path / 'inst.json') == ['lemon', 'brick', 'coin']  # file order
    for classes in (['lemon', 'brick', 'coin'], ['coin', 'lemon', 'brick']):
        dataset = CocoInstances(ann_file=str(tmp_path / 'inst.json'), classes=classes,
                                data_prefix=dict(img=''))
        by_x = {i['bbox'][0]: classes[i['bbox_label']] for i in
                dataset.get_data_info(0)['instances']}
        assert by_x == {0: 'lemon', 10: 'brick', 20: 'coin'}, classes


def test_the_metric_scores_labels_against_their_own_names(tmp_path):
    import torch

    from up2core.evaluation.coco import GroupedCocoMetric

    cats = [dict(id=1001, name='lemon'), dict(id=7, name='brick')]
    data = dict(images=[dict(id=1, file_name='a.png', width=40, height=40)], categories=cats,
                annotations=[dict(id=1, image_id=1, category_id=1001, bbox=[0, 0, 10, 10]),
                             dict(id=2, image_id=1, category_id=7, bbox=[20, 20, 10, 10])])
    (tmp_path / 'inst.json').write_text(json.dumps(data))  # no 'area': completed by the rules
    metric = GroupedCocoMetric(ann_file=str(tmp_path / 'inst.json'), metric='bbox')
    metric.dataset_meta = dict(classes=('brick', 'lemon'))  # another order than the file's
    pred = dict(img_id=1, bboxes=torch.tensor([[20., 20., 30., 30.], [0., 0., 10., 10.]]),
                scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 1]))
    metric.process({}, [dict(img_id=1, ori_shape=(40, 40), pred_instances=pred)])
    assert metric.evaluate(1)['coco/bbox_mAP'] == 1.0


def test_what_exporters_write_differently_is_read_as_meant():
    """Float ids (Label Studio), an image listed twice (merged exports), a file name with a
    folder, no iscrowd (CVAT boxes): read, the duplicate once; the same id for two files is
    refused, naming both."""
    data = dict(images=[dict(id=1.0, file_name='batch1/a.png', width=20, height=20),
                        dict(id=1, file_name='batch1/a.png', width=20, height=20)],
                categories=[dict(id=3.0, name='thing')],
                annotations=[dict(id=7.0, image_id=1.0, category_id=3, bbox=[1, 1, 5, 5],
                                  area=25)])
    cleaned, rulings = read_instances(data, 'x.json')
    assert [r.kind for r in rulings] == ['image listed twice', 'annotation without a mask']
    assert cleaned['images'] == [dict(id=1, file_name='batch1/a.png', width=20, height=20)]
    assert cleaned['annotations'][0]['id'] == 7 and cleaned['annotations'][0]['iscrowd'] == 0
    assert cleaned['categories'] == [dict(id=3, name='thing')]
    data['images'][1]['file_name'] = 'batch2/a.png'
    with pytest.raises(DataError, match=r"images\[1\] \(id 1\): duplicate image id: id 1 names "
                                        r"both batch1/a.png and batch2/a.png"):
        validate_instances(data, 'x.json')
