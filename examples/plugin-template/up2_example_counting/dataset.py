"""Images with their object count, read from a COCO instances json."""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.dataset import BaseDataset

from up2core.data.prepare import prepare_data
from up2core.errors import DataError


class CocoCountDataset(BaseDataset):
    """One sample per image: ``img_path``, ``img_id`` and ``gt_count`` (non-crowd instances).

    Any COCO instances json works (COCO's own, Shapes' ``annotations/instances_*.json``).

    Args:
        ann_file: the instances json (relative to ``data_root``).
        data_prefix: ``dict(img='images/val/')``: the folder ``file_name`` is relative to.
        prepare: optional ``dict(type='shapes', ...)``: generate Shapes under ``data_root`` on
            first use (the same spec as the other Shapes datasets of the config).
    """

    def __init__(self, ann_file: str, data_root: str = '', prepare: dict | None = None,
                 **kwargs) -> None:
        if prepare is not None:
            prepare_data(data_root, prepare)
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        path = Path(self.ann_file)
        if not path.is_file():
            raise DataError(f"{path}: COCO instances json not found; check ann_file and "
                            f"data_root")
        try:
            coco = json.loads(path.read_text())
            images, annotations = coco['images'], coco['annotations']
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a COCO instances json ({type(exc).__name__}: {exc}); "
                            f"expected the keys 'images' and 'annotations'") from None
        counts = {}
        for index, image in enumerate(images):
            if 'id' not in image or 'file_name' not in image:
                raise DataError(f"{path}: images[{index}] lacks 'id' or 'file_name'")
            counts[image['id']] = 0
        for index, ann in enumerate(annotations):
            if ann.get('image_id') not in counts:
                raise DataError(f"{path}: annotations[{index}] (id {ann.get('id')}) refers to "
                                f"image_id {ann.get('image_id')}, which is not in 'images'")
            counts[ann['image_id']] += 0 if ann.get('iscrowd') else 1
        prefix = Path(self.data_prefix.get('img', ''))
        return [dict(img_path=str(prefix / image['file_name']), img_id=image['id'],
                     gt_count=counts[image['id']]) for image in images]
