"""Images with their object count, read from a COCO instances json."""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.dataset import BaseDataset


class ShapesCountDataset(BaseDataset):
    """One sample per image: ``img_path`` and ``gt_count`` (number of non-crowd instances).

    Args:
        ann_file: COCO instances json.
        data_prefix: ``dict(img='images/val/')``, joined to ``data_root``.
    """

    def load_data_list(self) -> list[dict]:
        path = Path(self.ann_file)
        try:
            coco = json.loads(path.read_text())
            images, annotations = coco['images'], coco['annotations']
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: not a readable COCO instances json ({exc}); expected "
                             f"keys 'images' and 'annotations'.") from exc
        counts = {image['id']: 0 for image in images}
        for index, ann in enumerate(annotations):
            if ann.get('image_id') not in counts:
                raise ValueError(f"{path}: annotation #{index} (id {ann.get('id')}) refers to "
                                 f"image_id {ann.get('image_id')}, which is not in 'images'.")
            counts[ann['image_id']] += 0 if ann.get('iscrowd') else 1
        prefix = Path(self.data_prefix.get('img', ''))
        return [dict(img_path=str(prefix / image['file_name']), img_id=image['id'],
                     gt_count=counts[image['id']]) for image in images]
