"""COCO instance annotations for any task that needs boxes or masks (mmdet's reader).

Registered in DATASETS as ``CocoInstances``; the registry imports this module on first lookup
(mmdet's datasets take seconds to import, which ``up2 data`` and the other tasks need not pay).
"""

from __future__ import annotations

from pathlib import Path

from mmdet.datasets import CocoDataset

from up2core.data.prepare import prepare_data
from up2core.errors import DataError
from up2core.registry import DATASETS


@DATASETS.register_module()
class CocoInstances(CocoDataset):
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
