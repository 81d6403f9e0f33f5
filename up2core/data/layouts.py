"""The data layouts users already have, and how each becomes a UP2 dataset config.

A layout turns one task's entry of a dataset file (:mod:`up2core.data.dataset_file`) into:

* the dataset config of a split (``dataset``), keeping the config's pipeline and options;
* the names the data defines (``names``: ``{'train': [...], 'val': [...]}`` or None);
* the evaluator config that scores the val split (``evaluator``).

Built in:

``coco_instances``  a COCO instances json + an image folder per split, categories with any ids,
                    polygons or RLE, ``iscrowd`` honoured, images without annotations kept as
                    negatives (``filter_empty: true`` leaves them out of training);
``image_folder``    the torchvision ImageFolder tree (``train/<class>/...``); class names are
                    the folder names, or the lines of ``classes.txt`` (one readable name per
                    folder, in sorted folder order; the entry's ``classes:`` or the file next to
                    the train folder);
``captions``        COCO captions json, or JSON Lines / CSV rows of ``{image, caption}``
                    (several rows per image); image paths relative to the file's ``path`` unless
                    the split names ``images``.

A task names its layout in ``Task.data_layout``; a plugin with a layout of its own registers it
with :func:`register_layout`.
"""

from __future__ import annotations

import json
from pathlib import Path
from up2core.errors import DataError

#: file name of the optional readable class names next to an image-folder tree
CLASSES_FILE = 'classes.txt'


class DataLayout:
    """Base class of a layout (see the module docstring)."""

    name = ''

    def names(self, source) -> dict[str, list[str]] | None:
        return None

    def dataset(self, source, split: str, base: dict, names) -> dict:
        raise NotImplementedError

    def evaluator(self, source, base: dict, names) -> dict:
        return base


def _keep(base: dict, *keys: str) -> dict:
    """The options of the config's dataset that stay whatever the data (pipeline, test mode,
    bad-sample policy...)."""
    return {k: v for k, v in base.items() if k in keys}


KEPT = ('pipeline', 'test_mode', 'skip_bad_samples', 'max_bad_samples', 'serialize_data',
        'lazy_init', 'indices')


def coco_categories(ann: Path) -> list[str]:
    """Category names of a COCO json, in the order the file lists them: the label order, as in
    mmdet (``CocoDataset`` labels categories in the file's order, whatever their ids).

    Raises:
        DataError: unreadable file, missing or malformed categories, duplicate names.
    """
    try:
        data = json.loads(Path(ann).read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f'{ann}: not readable as json ({exc})') from None
    cats = data.get('categories') if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise DataError(f"{ann}: 'categories' is missing or empty (a COCO instances file lists "
                        f"its categories with 'id' and 'name')")
    for index, cat in enumerate(cats):
        if not isinstance(cat, dict) or not isinstance(cat.get('name'), str) \
                or not cat['name'].strip() or 'id' not in cat:
            raise DataError(f"{ann}: categories[{index}] needs an 'id' and a non-empty 'name'")
    names = [c['name'] for c in cats]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{ann}: category name '{name}' appears twice; UP2 predicts names, "
                            f'so each category needs its own')
        seen.add(name)
    return names


class CocoInstancesLayout(DataLayout):
    name = 'coco_instances'

    def names(self, source) -> dict[str, list[str]]:
        found = {split: coco_categories(s.ann) for split, s in source.splits.items()
                 if s.ann is not None}
        train = found.get('train') or found.get('val')
        val = found.get('val') or train
        # names of val that training never saw are still scored (zero-shot): after the others
        return {'train': train, 'val': train + [n for n in val if n not in train]
                if 'train' in found else val}

    def dataset(self, source, split, base, names) -> dict:
        where = source.split(split)
        if where.ann is None or where.images is None:
            raise DataError(f"'{source.task}.{split}' needs 'ann' (a COCO instances json) and "
                            f"'images' (its image folder)")
        train = split == 'train'
        return dict(_keep(base, *KEPT), type='CocoInstances', data_root='',
                    ann_file=str(where.ann), data_prefix=dict(img=str(where.images) + '/'),
                    classes=names['train'] if train else names['val'],
                    filter_cfg=dict(filter_empty_gt=train and source.filter_empty))

    def evaluator(self, source, base, names) -> dict:
        updated = dict(base, ann_file=str(source.split('val').ann))
        if 'category_groups' in updated or updated.get('type') == 'GroupedCocoMetric':
            seen = [n for n in names['val'] if n in names['train']]
            novel = [n for n in names['val'] if n not in names['train']]
            updated['category_groups'] = dict(seen=seen, novel=novel) if novel and seen \
                else None
        return updated


def image_folder_classes(source) -> tuple[list[str], list[str]]:
    """``(folders, readable names)`` of an image-folder task: the class folders of its train
    split (else val), sorted, and their names from ``classes.txt`` or the folders."""
    where = source.split('train') or source.split('val')
    if where.images is None:
        raise DataError(f"'{source.task}' reads an image-folder tree: write "
                        f"{source.task}: {{train: path/to/train, val: path/to/val}}")
    from up2core.data.image_folder import class_folders

    folders = class_folders(where.images)
    if not folders:
        raise DataError(f"{where.images}: no class folders (the layout is "
                        f"<split>/<class name>/<image>)")
    classes = source.classes
    if classes is None and (where.images.parent / CLASSES_FILE).is_file():
        classes = where.images.parent / CLASSES_FILE
    if classes is None:
        return folders, folders
    names = [line.strip() for line in classes.read_text(encoding='utf-8').splitlines()
             if line.strip()]
    if len(names) != len(folders):
        raise DataError(f'{classes}: {len(names)} names for {len(folders)} class folders of '
                        f'{where.images}; write one readable name per folder, in the sorted '
                        f"folder order ({', '.join(folders[:3])}...)")
    return folders, names


class ImageFolderLayout(DataLayout):
    name = 'image_folder'

    def names(self, source) -> dict[str, list[str]]:
        folders, names = image_folder_classes(source)
        return {'train': names, 'val': names, 'folders': folders}

    def dataset(self, source, split, base, names) -> dict:
        where = source.split(split)
        if where.images is None or where.ann is not None:
            raise DataError(f"'{source.task}.{split}' reads an image-folder tree: give the "
                            f'folder itself ({source.task}: {{{split}: path/to/{split}}})')
        return dict(_keep(base, *KEPT), type='ImageFolderDataset', data_root='',
                    data_prefix=dict(img=str(where.images)), classes=list(names['folders']),
                    class_names=list(names['train']))


class CaptionsLayout(DataLayout):
    name = 'captions'

    def dataset(self, source, split, base, names) -> dict:
        where = source.split(split)
        if where.ann is None:
            raise DataError(f"'{source.task}.{split}' needs 'ann': a COCO captions json, or a "
                            f'.jsonl / .csv file of image and caption rows')
        # a Karpathy json holds every split: each split of the dataset file reads its own
        # ('train' with 'restval', as Karpathy's training set); other formats ignore it
        return dict(_keep(base, *KEPT), type='CaptionDataset', data_root='',
                    ann_file=str(where.ann), split=split,
                    data_prefix=dict(img=str(where.images or source.root)))


LAYOUTS: dict[str, DataLayout] = {}


def register_layout(layout: DataLayout) -> DataLayout:
    """Make ``layout`` available to tasks whose ``data_layout`` is ``layout.name``."""
    if not layout.name:
        raise ValueError(f'{type(layout).__name__} has no name')
    LAYOUTS[layout.name] = layout
    return layout


for _layout in (CocoInstancesLayout(), ImageFolderLayout(), CaptionsLayout()):
    register_layout(_layout)


def get_layout(name: str) -> DataLayout:
    if name not in LAYOUTS:
        raise DataError(f"no data layout '{name}' (known: {', '.join(sorted(LAYOUTS))}); a "
                        f'plugin registers its own with up2core.data.layouts.register_layout')
    return LAYOUTS[name]

