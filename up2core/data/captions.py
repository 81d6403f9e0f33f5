"""Image-caption data for every task that reads captions (retrieval, captioning, a plugin's own).

Registered in DATASETS as ``CaptionDataset`` and in TRANSFORMS as ``SampleCaption``; they live in
the core so that tasks share one reader without importing each other.  Formats: COCO captions
json, Karpathy-split json (COCO / Flickr30k), Shapes (COCO captions format), JSON Lines or CSV rows
of an image and a caption.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset

from up2core.data.prepare import prepare_data
from up2core.data.bad_samples import BadSamplePolicy, check_files_exist
from up2core.errors import DataError
from up2core.registry import DATASETS, TRANSFORMS


@DATASETS.register_module()
class CaptionDataset(BadSamplePolicy, BaseDataset):
    """One sample per image with all its captions (``texts``).

    Reads any of these formats, detected from the file:

    * COCO captions (``captions_train2017.json``, Shapes ``annotations/captions_*.json``):
      ``images`` + ``annotations`` with ``image_id`` and ``caption``;
    * Karpathy splits (``dataset_coco.json``, ``dataset_flickr30k.json``): ``images`` with
      ``filename``, optional ``filepath``, ``split`` and ``sentences[].raw``; ``split`` selects
      ('train' also takes 'restval', as is customary);
    * JSON Lines (``.jsonl``) or CSV (``.csv``) rows of an image path and a caption
      (:func:`read_caption_rows`), paths relative to ``data_prefix.img``.

    Args:
        ann_file: the json (relative to ``data_root``).
        split: Karpathy split to read ('train', 'val', 'test'); ignored for COCO captions.
        data_prefix: ``dict(img=...)``: folder the image file names are relative to.
        prepare: optional ``dict(type='shapes', ...)``: generate the data on first use.
        skip_bad_samples: skip (and record) images that fail to load instead of stopping
            (:mod:`up2core.data.bad_samples`); listed files must exist either way.
    """

    def __init__(self, ann_file: str, data_root: str = '', split: str | None = None,
                 prepare: dict | None = None, data_prefix: dict | None = None,
                 **kwargs) -> None:
        if prepare is not None:
            prepare_data(data_root, prepare)
        self.split = split
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix or dict(img=''), **kwargs)

    def load_data_list(self) -> list[dict]:
        prefix = Path(self.data_prefix.get('img', ''))
        data = [dict(img_path=str(prefix / file_name), img_id=img_id, texts=list(texts))
                for file_name, img_id, texts in read_caption_file(self.ann_file, self.split)]
        check_files_exist([(d['img_path'], f"image id {d['img_id']}") for d in data],
                          str(self.ann_file))
        return data


def read_caption_file(ann_file: str | Path, split: str | None = None
                      ) -> list[tuple[str, int, list[str]]]:
    """``(file_name, image_id, captions)`` of every image with captions in a COCO captions or
    Karpathy json (``split`` selects Karpathy images; 'train' also takes 'restval').

    Raises:
        DataError: naming the file (and the record) when it cannot be read or has no captions.
    """
    path = Path(ann_file)
    if path.suffix.lower() in ('.jsonl', '.csv'):
        records = list(read_caption_rows(path).items())
        return [(file_name, index, texts) for index, (file_name, texts) in enumerate(records)]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"caption file '{path}' cannot be read as json: {exc}") from exc
    if not isinstance(data, dict) or 'images' not in data:
        raise DataError(f"{path}: expected a json object with 'images' (COCO captions or "
                         f"Karpathy format)")
    for key in ('images', 'annotations'):
        if key in data and not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list of records, not "
                            f"{type(data[key]).__name__}")
    records = _karpathy(data, path, split) if 'annotations' not in data else _coco(data, path)
    records = [record for record in records if record[2]]
    if not records:
        raise DataError(f'{path}: no image with captions'
                         + (f" in split '{split}'" if split else ''))
    return records


def read_caption_rows(path: str | Path) -> dict[str, list[str]]:
    """Captions by image from JSON Lines (``{"image": ..., "caption": ...}`` per line, or
    ``"captions": [...]``) or CSV (a header with ``image`` and ``caption`` columns); several
    rows may name one image.  Images keep the order of their first row.

    Raises:
        DataError: naming the file, the line and the fix (unreadable, not an object, no image,
            an empty caption, a CSV without the two columns).
    """
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"caption file '{path}' cannot be read as UTF-8 text: {exc}") from None
    captions: dict[str, list[str]] = {}

    def add(where: str, image, texts) -> None:
        if not isinstance(image, str) or not image.strip():
            raise DataError(f"{path}, {where}: 'image' must be an image path (a string), got "
                            f'{image!r}')
        for caption in texts:
            if not isinstance(caption, str) or not caption.strip():
                raise DataError(f"{path}, {where}: empty or non-text caption {caption!r} for "
                                f"image '{image}'; fill it or remove the row")
        captions.setdefault(image.strip(), []).extend(c.strip() for c in texts)

    if path.suffix.lower() == '.jsonl':
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f'{path}, line {number}: not a JSON object ({exc})') from None
            if not isinstance(row, dict) or ('caption' not in row and 'captions' not in row):
                raise DataError(f"{path}, line {number}: expected an object with 'image' and "
                                f"'caption' (or 'captions': [...]), got {line.strip()[:80]!r}")
            texts = row['captions'] if 'captions' in row else [row['caption']]
            if not isinstance(texts, list):
                raise DataError(f"{path}, line {number}: 'captions' must be a list of strings")
            add(f'line {number}', row.get('image'), texts)
    else:
        try:
            reader = csv.DictReader(text.splitlines())
            fields = [f.strip() for f in reader.fieldnames or []]
            if 'image' not in fields or 'caption' not in fields:
                raise DataError(f"{path}: the CSV header must name the columns 'image' and "
                                f"'caption' (it has {fields})")
            reader.fieldnames = fields
            for number, row in enumerate(reader, start=2):
                add(f'line {number}', row.get('image'), [row.get('caption') or ''])
        except csv.Error as exc:
            raise DataError(f'{path}: not readable as CSV ({exc})') from None
    if not captions:
        raise DataError(f'{path}: no image with captions')
    return captions


def _coco(data: dict, path: Path):
    captions: dict = {image['id']: [] for image in data['images']}
    for index, ann in enumerate(data['annotations']):
        if ann.get('image_id') not in captions or not isinstance(ann.get('caption'), str):
            raise DataError(f"{path}: annotation #{index} (id {ann.get('id')}) needs an "
                             f"'image_id' listed in 'images' and a 'caption' string")
        if not ann['caption'].strip():
            raise DataError(f"{path}: annotation #{index} (id {ann.get('id')}, image_id "
                            f"{ann['image_id']}) has an empty 'caption'; fill it or remove the "
                            f"annotation")
        captions[ann['image_id']].append(ann['caption'].strip())
    return [(image['file_name'], image['id'], captions[image['id']]) for image in data['images']]


def _karpathy(data: dict, path: Path, split: str | None):
    wanted = {split, 'restval'} if split == 'train' else {split}
    if not any(isinstance(i, dict) and 'split' in i for i in data['images']):
        split = None  # a file of one split (no 'split' fields): all of it
    records = []
    for index, image in enumerate(data['images']):
        if not isinstance(image, dict):
            raise DataError(f'{path}: image #{index} is not a json object: {image!r:.80}')
        if split is not None and image.get('split') not in wanted:
            continue
        try:
            file_name = str(Path(image.get('filepath', '')) / image['filename'])
            texts = [s['raw'].strip() for s in image['sentences']]
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{path}: image #{index} lacks 'filename' or "
                             f"'sentences[].raw' ({exc})") from exc
        if not all(texts):
            raise DataError(f"{path}: image #{index} ({image['filename']}) has an empty "
                            f"sentence (sentences[{texts.index('')}].raw); fill it or remove it")
        records.append((file_name, image.get('imgid', image.get('cocoid', index)), texts))
    return records


@TRANSFORMS.register_module()
class SampleCaption(BaseTransform):
    """Keep ``num`` different captions, drawn at random, of an image's ``texts`` (for
    training; all of them when it has fewer).

    Args:
        num: captions kept per image (a task reads as many as it uses: retrieval the first,
            captioning up to its ``captions_per_image``).
    """

    def __init__(self, num: int = 1) -> None:
        if num < 1:
            raise ValueError(f'SampleCaption needs num >= 1, got {num}')
        self.num = num

    def transform(self, results: dict) -> dict:
        texts = results['texts']
        if self.num == 1:  # the same draw as before `num` existed (seeded runs repeat)
            results['texts'] = [random.choice(texts)]
        else:
            results['texts'] = random.sample(texts, min(self.num, len(texts)))
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num={self.num})'

