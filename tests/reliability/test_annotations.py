"""COCO instances files, valid or broken in one place: a broken record is always a DataError that
names the file and the record, never another exception; what mmdet leaves out is counted."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from up2core.data.coco import validate_instances
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
    elif how == 'negative size':
        ann['bbox'][2] = -4
    elif how == 'nan':
        ann['bbox'][0] = float('nan')
    elif how == 'odd polygon':
        ann['segmentation'] = [[1, 2, 3, 4, 5]]
    elif how == 'rle size':
        ann['segmentation'] = {'size': [1, 1], 'counts': 'abc'}
    elif how == 'rle counts':
        image = next(im for im in images if im['id'] == ann['image_id'])
        ann['segmentation'] = {'size': [image['height'], image['width']], 'counts': [1, 2]}
    return f'annotations[{i}]'


BREAKS = ['image:id', 'image:width', 'image:file_name', 'drop:bbox', 'drop:area',
          'drop:category_id', 'drop:image_id', 'unknown category', 'unknown image', 'bbox',
          'negative size', 'nan', 'odd polygon', 'rle size', 'rle counts']


@given(coco_instances(), st.sampled_from(BREAKS), st.integers(0, 100))
@SETTINGS
def test_one_broken_record_is_named(data, how, index):
    data = copy.deepcopy(data)
    record = _break(data, how, index)
    with pytest.raises(DataError) as info:
        validate_instances(data, 'instances_x.json')
    message = str(info.value)
    assert message.startswith('instances_x.json: ') and record in message


@given(coco_instances(), st.sampled_from(['zero-area', 'outside its image', 'crowd']))
@SETTINGS
def test_left_out_annotations_are_counted_not_refused(data, kind):
    image = data['images'][0]
    ann = dict(id=999, image_id=image['id'], category_id=data['categories'][0]['id'],
               bbox=[2, 2, 4, 4], area=16, iscrowd=0)
    if kind == 'zero-area':
        ann.update(bbox=[2, 2, 0, 3], area=0)
    elif kind == 'outside its image':
        ann.update(bbox=[image['width'] + 5, 1, 4, 4])
    else:
        ann.update(iscrowd=1)
    data['annotations'].append(ann)
    assert validate_instances(data, 'x.json') == {kind: 1}


def test_the_dataset_names_the_file_and_reports_left_out_annotations(tmp_path, monkeypatch):
    import up2core.data.coco as coco
    from up2core.data.coco import CocoInstances

    logged = []  # the logger's level and handlers depend on earlier tests: read the message
    monkeypatch.setattr(coco, 'print_log', lambda message, **kwargs: logged.append(message))

    data = dict(images=[dict(id=1, file_name='a.png', width=20, height=20)],
                categories=[dict(id=1, name='thing')],
                annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 1, 5, 5], area=25),
                             dict(id=2, image_id=1, category_id=1, bbox=[1, 1, 0, 5], area=0),
                             dict(id=3, image_id=1, category_id=1, bbox=[1, 1, 5, 5], area=25,
                                  iscrowd=1)])
    (tmp_path / 'inst.json').write_text(json.dumps(data))
    dataset = CocoInstances(ann_file=str(tmp_path / 'inst.json'), classes=['thing'],
                            data_prefix=dict(img=''))
    instances = dataset.get_data_info(0)['instances']
    assert [i['ignore_flag'] for i in instances] == [0, 1]  # zero-area left out, crowd ignored
    assert any('inst.json: of 3 annotations, 1 zero-area, 1 crowd' in m for m in logged)
    data['annotations'][0]['segmentation'] = [[1, 1, 2]]
    (tmp_path / 'inst.json').write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"inst.json: annotations\[0\] \(id 1\): 'segmentation' "
                                        r"polygon #0"):
        CocoInstances(ann_file=str(tmp_path / 'inst.json'), classes=['thing'])
