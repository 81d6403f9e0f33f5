"""GroupedCocoMetric: mmdet's COCO AP plus AP per group of names, checked against pycocotools."""

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from up2core.data.shapes import ShapesSpec, colour_shape_names, generate_shapes, held_out_names
from up2core.evaluation import GroupedCocoMetric


@pytest.fixture(scope='module')
def shapes_val(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_metric')
    generate_shapes(root, ShapesSpec(num_train=0, num_val=16, image_size=64, seed=3))
    return root / 'annotations' / 'instances_colour_val.json'


def _fixed_predictions(ann_file, seed=0):
    """Ground truth jittered, some labels wrong, one false positive per image; as COCO json
    results and as the data samples mmdet's metric reads."""
    rng = np.random.default_rng(seed)
    coco = COCO(str(ann_file))
    cat_ids = coco.getCatIds(catNms=colour_shape_names())
    samples, results = [], []
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        boxes, scores, labels, masks = [], [], [], []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            x, y, w, h = ann['bbox']
            box = np.array([x, y, x + w, y + h]) + rng.normal(0, 1.5, 4)
            label = cat_ids.index(ann['category_id'])
            if rng.random() < 0.2:
                label = int(rng.integers(len(cat_ids)))
            mask = coco.annToMask(ann).astype(bool)
            if rng.random() < 0.5:
                mask = np.roll(mask, 1, axis=1)
            boxes.append(box), scores.append(float(rng.uniform(0.3, 1))), labels.append(label)
            masks.append(mask)
        boxes.append([2, 2, 20, 20]), scores.append(0.6), labels.append(0)
        masks.append(np.zeros((info['height'], info['width']), dtype=bool))
        masks[-1][2:20, 2:20] = True
        samples.append(dict(img_id=img_id, ori_shape=(info['height'], info['width']),
                            pred_instances=dict(bboxes=torch.tensor(np.array(boxes)).float(),
                                                scores=torch.tensor(scores),
                                                labels=torch.tensor(labels),
                                                masks=torch.tensor(np.array(masks)))))
        for box, score, label, mask in zip(boxes, scores, labels, masks):
            x0, y0, x1, y1 = [float(v) for v in box]
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            results.append(dict(image_id=img_id, category_id=cat_ids[label], score=score,
                                bbox=[x0, y0, x1 - x0, y1 - y0], segmentation=rle))
    return coco, samples, results


def _reference_ap(coco, results, iou_type, cat_names=None):
    evaluator = COCOeval(coco, coco.loadRes(results), iou_type)
    if cat_names is not None:
        evaluator.params.catIds = coco.getCatIds(catNms=cat_names)
    evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    return evaluator.stats[0], evaluator.stats[1]


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_grouped_metric_equals_pycocotools(shapes_val, iou_type):
    coco, samples, results = _fixed_predictions(shapes_val)
    novel = held_out_names()
    seen = [n for n in colour_shape_names() if n not in novel]
    metric = GroupedCocoMetric(ann_file=str(shapes_val), metric=iou_type,
                               category_groups=dict(seen=seen, novel=novel))
    metric.dataset_meta = dict(classes=tuple(colour_shape_names()))
    metric.process({}, samples)
    values = metric.compute_metrics(metric.results)
    ap, ap50 = _reference_ap(coco, results, iou_type)
    assert 0.1 < ap < 0.95  # a meaningful, imperfect score
    assert np.isnan(values[f'{iou_type}_mAP_l'])  # no large object: COCOeval's -1 is no AP
    assert values[f'{iou_type}_mAP'] == pytest.approx(round(ap, 3), abs=1e-3)
    assert values[f'{iou_type}_mAP_50'] == pytest.approx(round(ap50, 3), abs=1e-3)
    for group, names in (('seen', seen), ('novel', novel)):
        ap, ap50 = _reference_ap(coco, results, iou_type, names)
        assert values[f'{iou_type}_mAP_{group}'] == pytest.approx(round(ap, 3), abs=1e-3)
        assert values[f'{iou_type}_mAP_50_{group}'] == pytest.approx(round(ap50, 3), abs=1e-3)


def test_a_group_without_ground_truth_is_nan_not_a_score(shapes_val, tmp_path):
    data = json.loads(shapes_val.read_text())
    novel = set(held_out_names())
    novel_ids = {c['id'] for c in data['categories'] if c['name'] in novel}
    data['annotations'] = [a for a in data['annotations'] if a['category_id'] not in novel_ids]
    ann_file = tmp_path / 'no_novel.json'
    ann_file.write_text(json.dumps(data))
    _, samples, _ = _fixed_predictions(ann_file)
    metric = GroupedCocoMetric(ann_file=str(ann_file), metric='bbox',
                               category_groups=dict(novel=sorted(novel)))
    metric.dataset_meta = dict(classes=tuple(colour_shape_names()))
    metric.process({}, samples)
    values = metric.compute_metrics(metric.results)
    assert np.isnan(values['bbox_mAP_novel']) and values['bbox_mAP'] > 0


def test_unknown_group_names_are_an_error(shapes_val):
    _, samples, _ = _fixed_predictions(shapes_val)
    metric = GroupedCocoMetric(ann_file=str(shapes_val), metric='bbox',
                               category_groups=dict(odd=['mauve circle']))
    metric.dataset_meta = dict(classes=tuple(colour_shape_names()))
    metric.process({}, samples)
    with pytest.raises(KeyError, match='mauve circle'):
        metric.compute_metrics(metric.results)


def test_the_report_has_pr_curves_whose_areas_are_the_aps_and_a_confusion_matrix(shapes_val,
                                                                                 tmp_path):
    """``report_dir`` (``up2 test``): precision-recall curves per group whose mean precision
    is COCOeval's AP / AP50 of that group, and the boxes' confusion matrix with background,
    each with a picture and its numbers."""
    coco, samples, results = _fixed_predictions(shapes_val)
    novel = held_out_names()
    seen = [n for n in colour_shape_names() if n not in novel]
    metric = GroupedCocoMetric(ann_file=str(shapes_val), metric='bbox', report_dir=str(tmp_path),
                               category_groups=dict(seen=seen, novel=novel))
    metric.dataset_meta = dict(classes=tuple(colour_shape_names()))
    metric.process({}, samples)
    metric.compute_metrics(metric.results)
    curves = json.loads((tmp_path / 'pr_curves_bbox.json').read_text())
    assert len(curves['recall']) == 101 and set(curves['precision']) == {'all', 'seen', 'novel'}
    for group, names in (('all', None), ('seen', seen), ('novel', novel)):
        ap, ap50 = _reference_ap(coco, results, 'bbox', names)
        values = curves['precision'][group]
        assert np.mean(values['iou=0.50:0.95']) == pytest.approx(ap, abs=2e-3), group
        assert np.mean(values['iou=0.50']) == pytest.approx(ap50, abs=2e-3), group
    matrix = json.loads((tmp_path / 'confusion_matrix.json').read_text())
    counts = np.array(matrix['counts'])
    names = colour_shape_names()
    assert matrix['labels'] == names + ['background'] and counts.shape == (len(names) + 1,) * 2
    objects = len(coco.getAnnIds())
    assert counts[:-1].sum() == objects  # every object once: found as something, or missed
    assert counts[-1].sum() >= len(coco.getImgIds())  # each image's made-up box: background
    assert np.trace(counts[:-1, :-1]) > 0.6 * objects  # most names right (80 % kept)
    assert 0 < counts[:-1, :-1].sum() - np.trace(counts[:-1, :-1])  # and some wrong
    for picture in ('pr_curves_bbox.png', 'confusion_matrix.png'):
        assert (tmp_path / picture).stat().st_size > 5_000


def test_the_confusion_matrix_counts_each_object_and_detection_once():
    from up2core.evaluation.detection_reports import confusion_matrix

    gt = COCO()
    gt.dataset = {'images': [{'id': 1, 'width': 100, 'height': 100}],
                  'categories': [{'id': 5, 'name': 'a'}, {'id': 9, 'name': 'b'}],
                  'annotations': [
                      {'id': 1, 'image_id': 1, 'category_id': 5, 'bbox': [0, 0, 10, 10],
                       'area': 100, 'iscrowd': 0},
                      {'id': 2, 'image_id': 1, 'category_id': 9, 'bbox': [50, 50, 10, 10],
                       'area': 100, 'iscrowd': 0},
                      {'id': 3, 'image_id': 1, 'category_id': 9, 'bbox': [80, 0, 10, 10],
                       'area': 100, 'iscrowd': 0}]}
    gt.createIndex()
    detections = gt.loadRes([
        {'image_id': 1, 'category_id': 9, 'bbox': [0, 0, 10, 10], 'score': 0.9},  # a as b
        {'image_id': 1, 'category_id': 5, 'bbox': [0, 0, 10, 11], 'score': 0.8},  # again: bg
        {'image_id': 1, 'category_id': 9, 'bbox': [50, 50, 10, 10], 'score': 0.7},  # b as b
        {'image_id': 1, 'category_id': 9, 'bbox': [80, 0, 10, 10], 'score': 0.1},  # too low
        {'image_id': 1, 'category_id': 5, 'bbox': [30, 30, 5, 5], 'score': 0.5}])  # nothing
    counts = confusion_matrix(gt, detections, [5, 9], [1], score_thr=0.3, iou_thr=0.5)
    assert counts.tolist() == [[0, 1, 0],   # the a: found, called b
                               [0, 1, 1],   # the b's: one found, one missed
                               [2, 0, 0]]   # two detections of nothing, both called a
