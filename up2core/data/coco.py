"""COCO instance annotations for any task that needs boxes or masks (mmdet's reader).

:func:`validate_instances` checks a COCO instances json before mmdet reads it: a malformed
record is a :class:`~up2core.errors.DataError` naming the file, the record and the field (mmdet
would fail on it with a bare ``KeyError``, or later, mid-training, on a broken polygon), and the
annotations mmdet leaves out on purpose (zero-area boxes, boxes outside their image) or keeps as
ignored (crowd) are counted and logged instead of vanishing silently.

Registered in DATASETS as ``CocoInstances``; the registry imports this module on first lookup
(mmdet's datasets take seconds to import, which ``up2 data`` and the other tasks need not pay).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections import Counter
from pathlib import Path

from mmdet.datasets import CocoDataset
from mmengine.logging import print_log

from up2core.data.bad_samples import BadSamplePolicy
from up2core.data.prepare import prepare_data
from up2core.errors import DataError
from up2core.registry import DATASETS


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_segmentation(seg, image: dict, where: str) -> None:
    if isinstance(seg, list):
        for k, polygon in enumerate(seg):
            if not (isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0
                    and all(_number(v) for v in polygon)):
                raise ValueError(f"{where}: 'segmentation' polygon #{k} must be a flat list of at "
                                 f"least 3 (x, y) pairs of finite numbers")
        return
    if isinstance(seg, dict):
        size, counts = seg.get('size'), seg.get('counts')
        if size != [image['height'], image['width']]:
            raise ValueError(f"{where}: RLE 'size' {size} is not its image's [height, width] "
                             f"[{image['height']}, {image['width']}]")
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) \
                    or sum(counts) != size[0] * size[1]:
                raise ValueError(f"{where}: uncompressed RLE 'counts' must be non-negative ints "
                                 f"summing to height * width = {size[0] * size[1]}")
        elif not isinstance(counts, str) or not counts:
            raise ValueError(f"{where}: RLE 'counts' must be a non-empty string (compressed) or "
                             f"a list of ints (uncompressed)")
        return
    raise ValueError(f"{where}: 'segmentation' must be a list of polygons or an RLE dict")


def validate_instances(data, source: str = 'annotations') -> Counter:
    """Check a parsed COCO instances json; return what mmdet will not train on, counted.

    Returns:
        Counter with ``zero-area``, ``outside its image`` (annotations mmdet drops) and ``crowd``
        (kept as ignored regions).

    Raises:
        DataError: ``source``, the record (``annotations[12] (id 345)``), the field and the fix.
    """
    def fail(message: str):
        raise DataError(f'{source}: {message}')

    if not isinstance(data, dict):
        fail('expected a json object with images, annotations and categories')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            fail(f"'{key}' is missing or not a list (a COCO instances file has images, "
                 f"annotations and categories)")
    images: dict = {}
    for i, image in enumerate(data['images']):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            fail(f'{where} is not an object')
        for key in ('id', 'file_name', 'width', 'height'):
            if key not in image:
                fail(f"{where} lacks '{key}'")
        if not (isinstance(image['width'], int) and isinstance(image['height'], int)
                and image['width'] > 0 and image['height'] > 0):
            fail(f"{where} (id {image['id']}): 'width' and 'height' must be positive integers")
        if image['id'] in images:
            fail(f"{where}: image id {image['id']} appears twice")
        images[image['id']] = image
    categories = set()
    for i, category in enumerate(data['categories']):
        if not isinstance(category, dict) or 'id' not in category or 'name' not in category:
            fail(f"categories[{i}] needs an 'id' and a 'name'")
        categories.add(category['id'])
    ignored: Counter = Counter()
    for i, ann in enumerate(data['annotations']):
        if not isinstance(ann, dict):
            fail(f'annotations[{i}] is not an object')
        where = f"annotations[{i}] (id {ann.get('id')})"
        for key in ('id', 'image_id', 'category_id', 'bbox', 'area'):
            if key not in ann:
                hint = " (the box's w * h, or the mask's pixel count)" if key == 'area' else ''
                fail(f"{where} lacks '{key}'{hint}")
        image = images.get(ann['image_id'])
        if image is None:
            fail(f"{where}: image_id {ann['image_id']} is not in 'images'")
        if ann['category_id'] not in categories:
            fail(f"{where}: category_id {ann['category_id']} is not in 'categories'; add the "
                 f"category or remove the annotation")
        bbox = ann['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)
                and bbox[2] >= 0 and bbox[3] >= 0):
            fail(f"{where}: 'bbox' must be [x, y, width, height] with finite numbers and "
                 f"non-negative sizes, got {bbox!r}")
        if not _number(ann['area']):
            fail(f"{where}: 'area' must be a finite number, got {ann['area']!r}")
        if ann.get('iscrowd', 0) not in (0, 1, False, True):
            fail(f"{where}: 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
        if 'segmentation' in ann:
            try:
                _check_segmentation(ann['segmentation'], image, where)
            except ValueError as exc:
                fail(str(exc))
        x, y, w, h = bbox
        inside_w = min(x + w, image['width']) - max(x, 0)
        inside_h = min(y + h, image['height']) - max(y, 0)
        if ann['area'] <= 0 or w < 1 or h < 1:
            ignored['zero-area'] += 1
        elif inside_w <= 0 or inside_h <= 0:
            ignored['outside its image'] += 1
        elif ann.get('iscrowd'):
            ignored['crowd'] += 1
    return ignored


@DATASETS.register_module()
class CocoInstances(BadSamplePolicy, CocoDataset):
    """mmdet's ``CocoDataset`` (instances json via pycocotools), plus what UP2 configs need.

    * ``prepare=dict(type='shapes', ...)`` generates the embedded data on first use;
    * ``classes``: the category names to read, in label order (a subset of the file's:
      annotations of other categories are left out), given directly instead of in ``metainfo``;
    * a missing annotation file, or names the file lacks, are a :class:`DataError` naming the
      file and the names.

    Examples:
        >>> dict(type='CocoInstances', data_root='data/shapes',
        ...      ann_file='annotations/instances_colour_train.json',
        ...      data_prefix=dict(img='images/train/'), classes=['red circle', 'blue square'])
    """

    def __init__(self, *args, classes=None, prepare: dict | None = None, data_root: str = '',
                 metainfo: dict | None = None, **kwargs) -> None:
        if prepare is not None:
            prepare_data(data_root, prepare)
        metainfo = dict(metainfo or {})
        if classes is not None:
            metainfo['classes'] = tuple(classes)
        super().__init__(*args, data_root=data_root, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> list[dict]:
        path = Path(self.ann_file)
        if not path.is_file():
            raise DataError(f"COCO annotation file '{path}' not found")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f'{path}: not readable as json ({exc})') from None
        ignored = validate_instances(data, str(path))
        if ignored:
            counts = ', '.join(f'{n} {kind}' for kind, n in ignored.items())
            print_log(f"{path}: of {len(data['annotations'])} annotations, {counts}: zero-area "
                      f"boxes and boxes outside their image are left out, crowd regions are "
                      f"kept as ignored", logger='current', level=logging.INFO)
        del data
        try:
            # pycocotools prints its progress ("loading annotations into memory...") to stdout
            with contextlib.redirect_stdout(io.StringIO()):
                data_list = super().load_data_list()
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise DataError(f'{path}: not a valid COCO instances file ({type(exc).__name__}: '
                            f'{exc})') from exc
        classes = list(self.metainfo['classes'])
        if len(self.cat_ids) != len(classes):
            raise DataError(f'{path}: only {len(self.cat_ids)} of the {len(classes)} category '
                            f'names in `classes` are categories of the file; fix `classes` '
                            f'(it starts {classes[:3]})')
        return data_list
