"""COCO instance annotations for any task that needs boxes or masks (mmdet's reader).

The records are read by the rules of :mod:`up2core.data.coco_rules` (the ones ``up2 data check``
reports by): boxes a pixel past an edge are clipped, missing areas and boxes completed, and a
record that cannot be used is a :class:`~up2core.errors.DataError` naming the file, the record
and the fix (mmdet would fail on it with a bare ``KeyError``, or later, mid-training, on a broken
polygon); what is read differently from the file is counted and logged, never silent.  Labels
follow ``classes`` (by default the file's category order, as in mmdet).

Registered in DATASETS as ``CocoInstances``; the registry imports this module on first lookup
(mmdet's datasets take seconds to import, which ``up2 data`` and the other tasks need not pay).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from collections import Counter
from pathlib import Path

from mmdet.datasets import CocoDataset
from mmengine.logging import print_log

from up2core.data.bad_samples import BadSamplePolicy
from up2core.data.coco_rules import CONSEQUENCES, read_instances, summary
from up2core.data.prepare import prepare_data
from up2core.errors import DataError
from up2core.registry import DATASETS


def validate_instances(data, source: str = 'annotations') -> Counter:
    """Check a parsed COCO instances json by UP2's rules (:mod:`up2core.data.coco_rules`);
    return what it reads differently from the file, counted by kind.

    Returns:
        Counter of the warnings and notes (``'box past the image edge (clipped)'``,
        ``'zero-size box'``, ``'crowd region'``...).

    Raises:
        DataError: ``source``, the first refused record (``annotations[12] (id 345)``), what is
            wrong and the fix; with the count of the others.
    """
    return Counter(r.kind for r in _ruled(data, source)[1])


def _ruled(data, source: str) -> tuple[dict, list]:
    """:func:`~up2core.data.coco_rules.read_instances`, its first refused record raised."""
    try:
        cleaned, rulings = read_instances(data, source)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    errors = [r for r in rulings if r.severity == 'error']
    if errors:
        first = errors[0]
        more = f' (and {len(errors) - 1} more refused records)' if len(errors) > 1 else ''
        raise DataError(f'{source}: {first.record}: {first.kind}: {first.detail}{more} -> '
                        f'{CONSEQUENCES[first.kind]}; `up2 data check` lists them all, '
                        f'`up2 train --skip-bad-records` trains without them')
    return cleaned, rulings


def coco_api(data: dict, api: type | None = None):
    """mmdet's ``COCO`` over an already parsed (and ruled) instances dict."""
    if api is None:
        from mmdet.datasets.api_wrappers import COCO as api
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' progress prints
        coco = api()
        coco.dataset = data
        coco.createIndex()
    # mmdet's wrapper binds these aliases in __init__, to the empty indexes of then
    coco.img_ann_map, coco.cat_img_map = coco.imgToAnns, coco.catToImgs
    return coco


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
        """mmdet's reading of the file, on the records as :mod:`~up2core.data.coco_rules`
        rules them (clipped, completed, refused), with labels in the order of ``classes``."""
        path = Path(self.ann_file)
        if not path.is_file():
            raise DataError(f"COCO annotation file '{path}' not found")
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DataError(f'{path}: not readable as json ({exc})') from None
        cleaned, rulings = _ruled(data, str(path))
        del data
        counts = summary(rulings)
        if counts:
            print_log(f"{path}: of {len(cleaned['annotations'])} annotations read, {counts} "
                      f'(`up2 data check` says what each means)', logger='current',
                      level=logging.INFO)
        self.coco = coco_api(cleaned, self.COCOAPI)
        classes = list(self.metainfo['classes'])
        ids = {cat['name']: cat['id'] for cat in cleaned['categories']}
        unknown = [name for name in classes if name not in ids]
        if unknown:
            raise DataError(f'{path}: {len(unknown)} of the {len(classes)} category names in '
                            f'`classes` are not categories of the file ({unknown[:3]}); fix '
                            f'`classes` or the file')
        # label i is classes[i], whatever order the file lists its categories in (mmdet labels
        # them in the file's order, which silently mislabels a `classes` given in another one)
        self.cat_ids = [ids[name] for name in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = copy.deepcopy(self.coco.cat_img_map)
        data_list = []
        for img_id in self.coco.get_img_ids():
            raw_img_info = dict(self.coco.load_imgs([img_id])[0], img_id=img_id)
            raw_ann_info = self.coco.load_anns(self.coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(self.parse_data_info({'raw_ann_info': raw_ann_info,
                                                   'raw_img_info': raw_img_info}))
        del self.coco
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's, plus an empty mask for an instance without one: mmdet's ``LoadAnnotations``
        needs the key; the region tasks leave maskless instances out of mask training."""
        info = super().parse_data_info(raw_data_info)
        for instance in info['instances']:
            instance.setdefault('mask', [])
        return info
