"""What UP2 makes of each record of a COCO instances file: one rule book for the check, the
reader and the metric.

Real exports (COCO itself, LVIS, Objects365, CVAT, Label Studio, Roboflow) carry records that
are sound but not tidy.  :func:`read_instances` decides each one the way a user of mmdet or
ultralytics expects (train on what is sound, clip what is recoverable, refuse only what is not)
and returns the file as UP2 reads it together with a :class:`Ruling` per record it changed,
left out or refused:

=======================================  ========  ==============================================
record                                   severity  what UP2 does
=======================================  ========  ==============================================
box partly past an edge (rounding, an     warning   clipped to the image, trained on clipped
object cut by the frame)
polygon running past an edge              warning   its points clipped to the image
box entirely outside / empty once clipped error     refused (the record is unusable)
box narrower or lower than 1 pixel        warning   left out (mmdet leaves it out too)
polygon of fewer than 3 points            warning   that polygon left out; without any left, the
                                                    annotation has no mask
no ``bbox``, but a segmentation           note      the box of its mask
no ``area``                               note      the mask's pixel count (else the box's w * h)
no ``segmentation`` (or ``[]``)           note      a box: detection trains it, mask tasks leave
                                                    it out
``iscrowd: 1``                            note      an ignored region (mmdet's rule)
an image listed twice (same id and file)  warning   read once
ids written as floats (``3.0``)                     read as integers
no ``iscrowd``                                      0 (COCOeval needs it on every record)
=======================================  ========  ==============================================

Refused (errors; ``up2 data check`` lists them, ``--skip-bad-records`` trains without them):
malformed records, ids of unknown images or categories, the same image id for two files,
duplicate annotation ids, RLE masks of another size than their image, boxes with no part in
their image.

Examples:
    >>> data = {'images': [{'id': 1, 'file_name': 'a.jpg', 'width': 100, 'height': 50}],
    ...         'categories': [{'id': 7, 'name': 'coin'}],
    ...         'annotations': [{'id': 1, 'image_id': 1, 'category_id': 7,
    ...                          'bbox': [-1.0, 10, 20, 10], 'area': 200}]}
    >>> cleaned, rulings = read_instances(data, 'train.json')
    >>> cleaned['annotations'][0]['bbox'], [r.kind for r in rulings]
    ([0.0, 10.0, 19.0, 10.0], ['annotation without a mask', 'box past the image edge (clipped)'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: every kind of ruling and its severity (``up2 data check`` groups its report by these)
RULES = {
    'box past the image edge (clipped)': 'warning',
    'polygon past the image edge (clipped)': 'warning',
    'zero-size box': 'warning',
    'polygon of fewer than 3 points': 'warning',
    'image listed twice': 'warning',
    'box computed from its mask': 'note',
    'area computed': 'note',
    'annotation without a mask': 'note',
    'crowd region': 'note',
    'box outside its image': 'error',
    'duplicate image id': 'error',
    'duplicate annotation id': 'error',
    'annotation of an unknown image': 'error',
    'annotation of an unknown category': 'error',
    'malformed record': 'error',
}
#: what each kind means for training, or how to fix it (the end of its report line)
CONSEQUENCES = {
    'box past the image edge (clipped)': 'trained on the part inside the image',
    'polygon past the image edge (clipped)': 'trained on the part inside the image',
    'zero-size box': 'left out of training and evaluation (as mmdet does)',
    'polygon of fewer than 3 points': 'those polygons are left out',
    'image listed twice': 'read once',
    'box computed from its mask': 'trained on the box of the mask',
    'area computed': "from the mask's pixels, else the box",
    'annotation without a mask': 'detection trains on its box; mask tasks leave it out',
    'crowd region': 'kept as an ignored region',
    'box outside its image': 'fix or remove the boxes (no part of them is in their image)',
    'duplicate image id': 'give every image its own id',
    'duplicate annotation id': 'give every annotation its own id',
    'annotation of an unknown image': "add the images to 'images' or remove the annotations",
    'annotation of an unknown category': 'add the categories or remove the annotations',
    'malformed record': 'fix the fields named',
}


@dataclass
class Ruling:
    """What was decided about one record: its kind (a key of :data:`RULES`), the record
    (``annotations[4] (id 17)``), details, and the key that leaves it out (``('annotation',
    index)`` or ``('image', id)``) when it is an error."""

    kind: str
    record: str
    detail: str = ''
    drop: tuple | None = None

    @property
    def severity(self) -> str:
        return RULES[self.kind]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def as_id(value: Any) -> Any:
    """A COCO id as UP2 reads it: ints, strings, and floats with an integer value (``3.0`` ->
    ``3``); anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value == int(value) else None
    return value if isinstance(value, (int, str)) else None


def _mask_box_area(seg, height: int, width: int) -> tuple[list[float], float] | None:
    """``(bbox, pixel count)`` of a segmentation (polygons or RLE), or None when empty."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        if not seg:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    else:
        rle = seg if isinstance(seg.get('counts'), (str, bytes)) \
            else mask_utils.frPyObjects(seg, height, width)
        if isinstance(rle.get('counts'), str):
            rle = dict(rle, counts=rle['counts'].encode('ascii'))
    area = float(mask_utils.area(rle))
    if area <= 0:
        return None
    return [float(v) for v in mask_utils.toBbox(rle)], area


def _check_rle(seg: dict, image: dict) -> str | None:
    size, counts = seg.get('size'), seg.get('counts')
    if size != [image['height'], image['width']]:
        return (f"RLE 'size' {size} is not its image's [height, width] "
                f"[{image['height']}, {image['width']}]")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) \
                or sum(counts) != size[0] * size[1]:
            return (f"uncompressed RLE 'counts' must be non-negative ints summing to height * "
                    f"width = {size[0] * size[1]}")
    elif not isinstance(counts, str) or not counts:
        return "RLE 'counts' must be a non-empty string (compressed) or a list of ints"
    return None


def _polygons(seg: list, image: dict, where: str, rulings: list) -> list:
    """The usable polygons of ``seg``, their points clipped to the image."""
    width, height = image['width'], image['height']
    kept, short, clipped = [], 0, False
    for polygon in seg:
        if not (isinstance(polygon, list) and all(_number(v) for v in polygon)):
            raise ValueError('a polygon must be a flat list of finite numbers (x, y, x, y...)')
        if len(polygon) < 6 or len(polygon) % 2:
            short += 1
            continue
        xs, ys = polygon[0::2], polygon[1::2]
        if min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height:
            clipped = True
            polygon = [float(min(max(v, 0), width if k % 2 == 0 else height))
                       for k, v in enumerate(polygon)]
        kept.append(polygon)
    if short:
        rulings.append(Ruling('polygon of fewer than 3 points', where,
                              f'{short} of {len(seg)} polygons'))
    if clipped:
        rulings.append(Ruling('polygon past the image edge (clipped)', where,
                              f"in a {width}x{height} image"))
    return kept


def _annotation(item: Any, index: int, images: dict, categories: dict, seen: set,
                rulings: list) -> dict | None:
    """The annotation as UP2 reads it, or None (left out; a ruling says why)."""
    if not isinstance(item, dict):
        rulings.append(Ruling('malformed record', f'annotations[{index}]', 'not an object',
                              ('annotation', index)))
        return None
    where = f"annotations[{index}] (id {item.get('id')})"
    drop = ('annotation', index)

    def refuse(kind: str, detail: str) -> None:
        rulings.append(Ruling(kind, where, detail, drop))

    missing = [k for k in ('id', 'image_id', 'category_id') if k not in item]
    if missing:
        return refuse('malformed record', f"lacks {', '.join(missing)}")
    ids = {k: as_id(item[k]) for k in ('id', 'image_id', 'category_id')}
    if any(v is None for v in ids.values()):
        return refuse('malformed record', 'id, image_id and category_id must be integers')
    if ids['id'] in seen:
        return refuse('duplicate annotation id', f"id {ids['id']} appears twice")
    seen.add(ids['id'])
    image = images.get(ids['image_id'])
    if image is None:
        return refuse('annotation of an unknown image', f"image_id {item['image_id']}")
    if ids['category_id'] not in categories:
        return refuse('annotation of an unknown category', f"category_id {item['category_id']}")
    if item.get('iscrowd', 0) not in (0, 1, False, True):
        return refuse('malformed record', f"iscrowd must be 0 or 1, got {item['iscrowd']!r}")
    out = dict(item, **ids)
    width, height = image['width'], image['height']
    seg = item.get('segmentation')
    if isinstance(seg, dict):
        problem = _check_rle(seg, image)
        if problem:
            return refuse('malformed record', problem)
    elif isinstance(seg, list):
        try:
            seg = _polygons(seg, image, where, rulings)
        except ValueError as exc:
            return refuse('malformed record', str(exc))
        out['segmentation'] = seg
    elif seg is not None:
        return refuse('malformed record', 'segmentation must be polygons or an RLE dict')
    if not seg:
        out.pop('segmentation', None)
        rulings.append(Ruling('annotation without a mask', where))
    # the mask's box and pixel count, computed only when the record lacks one of them (this
    # rasterises the mask: too slow to do for every record of a large file)
    needs_mask = item.get('bbox') is None or not _number(item.get('area'))
    mask = _mask_box_area(seg, height, width) if seg and needs_mask else None
    bbox = item.get('bbox')
    if bbox is None:
        if mask is None:
            return refuse('malformed record', 'has neither a bbox nor a segmentation')
        bbox = mask[0]
        rulings.append(Ruling('box computed from its mask', where, f'bbox {bbox}'))
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
            and all(_number(v) for v in bbox)):
        return refuse('malformed record', f'bbox must be [x, y, w, h], got {bbox!r}')
    x, y, w, h = bbox
    if w < 1 or h < 1:
        rulings.append(Ruling('zero-size box', where, f'bbox {list(bbox)}'))
        return None
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return refuse('box outside its image', f'bbox {list(bbox)} in a {width}x{height} image')
    if (x0, y0, x1, y1) != (x, y, x + w, y + h):
        rulings.append(Ruling('box past the image edge (clipped)', where,
                              f'bbox {list(bbox)} in a {width}x{height} image'))
        bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    out['bbox'] = list(bbox)
    if not _number(item.get('area')):
        out['area'] = mask[1] if mask else float(bbox[2] * bbox[3])
        rulings.append(Ruling('area computed', where, f"area {out['area']:g}"))
    out['iscrowd'] = int(bool(out.get('iscrowd', 0)))  # COCOeval reads it from every record
    if out['iscrowd']:
        rulings.append(Ruling('crowd region', where))
    return out


def read_instances(data: Any, source: str = 'annotations') -> tuple[dict, list[Ruling]]:
    """A parsed COCO instances json as UP2 reads it, and the rulings that made it so.

    The returned dict holds only usable records (errors are left out, with their rulings), in
    the file's order; ``categories`` keep the file's order, which is the label order (as in
    mmdet).  The input is not modified.

    Raises:
        ValueError: ``data`` is not a COCO instances object at all (no lists ``images``,
            ``annotations``, ``categories``): nothing in it can be read.
    """
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                              for k in ('images', 'annotations', 'categories')):
        raise ValueError(f"{source}: a COCO instances file is an object with lists 'images', "
                         f"'annotations' and 'categories'")
    rulings: list[Ruling] = []
    categories: dict = {}
    kept_categories = []
    for index, cat in enumerate(data['categories']):
        cat_id = as_id(cat.get('id')) if isinstance(cat, dict) else None
        if cat_id is None or not isinstance(cat.get('name'), str) or not cat['name'].strip():
            rulings.append(Ruling('malformed record', f'categories[{index}]',
                                  "needs an integer 'id' and a non-empty 'name'"))
            continue
        if cat['name'] in categories.values():
            rulings.append(Ruling('malformed record', f'categories[{index}]',
                                  f"name '{cat['name']}' appears twice; UP2 predicts names, so "
                                  f'each category needs its own'))
            continue
        categories[cat_id] = cat['name']
        kept_categories.append(dict(cat, id=cat_id))
    images: dict = {}
    kept_images = []
    for index, image in enumerate(data['images']):
        image_id = as_id(image.get('id')) if isinstance(image, dict) else None
        where = f"images[{index}] (id {image.get('id') if isinstance(image, dict) else '?'})"
        if image_id is None or not all(k in image for k in ('file_name', 'width', 'height')) \
                or not isinstance(image['file_name'], str):
            rulings.append(Ruling('malformed record', where,
                                  "needs an integer 'id', a 'file_name' string, 'width' and "
                                  "'height'", ('image', image_id)))
            continue
        if image_id in images:
            if images[image_id]['file_name'] == image['file_name']:
                rulings.append(Ruling('image listed twice', where, f"id {image_id}"))
            else:
                rulings.append(Ruling('duplicate image id', where,
                                      f"id {image_id} names both "
                                      f"{images[image_id]['file_name']} and "
                                      f"{image['file_name']}", ('image', image_id)))
            continue
        size = [as_id(image[k]) for k in ('width', 'height')]
        if not all(isinstance(v, int) and v > 0 for v in size):
            rulings.append(Ruling('malformed record', where,
                                  'width and height must be positive integers',
                                  ('image', image_id)))
            continue
        record = dict(image, id=image_id, width=size[0], height=size[1])
        images[image_id] = record
        kept_images.append(record)
    seen: set = set()
    annotations = []
    for index, item in enumerate(data['annotations']):
        ann = _annotation(item, index, images, categories, seen, rulings)
        if ann is not None:
            annotations.append(ann)
    refused_images = {r.drop[1] for r in rulings
                      if r.severity == 'error' and r.drop and r.drop[0] == 'image'}
    cleaned = {k: v for k, v in data.items() if k not in ('images', 'annotations', 'categories')}
    cleaned['images'] = [i for i in kept_images if i['id'] not in refused_images]
    cleaned['annotations'] = [a for a in annotations if a['image_id'] not in refused_images]
    cleaned['categories'] = kept_categories
    return cleaned, rulings


def summary(rulings: list[Ruling], severities: tuple[str, ...] = ('warning', 'note')) -> str:
    """``'3 x box past the image edge (clipped), 1 x crowd region'`` of the given severities."""
    counts: dict[str, int] = {}
    for ruling in rulings:
        if ruling.severity in severities:
            counts[ruling.kind] = counts.get(ruling.kind, 0) + 1
    return ', '.join(f'{n} x {kind}' for kind, n in counts.items())


__all__ = ['RULES', 'CONSEQUENCES', 'Ruling', 'as_id', 'read_instances', 'summary']
