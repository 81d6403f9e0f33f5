"""An example of a user's own data: Shapes re-exported in the layouts users have, under new names.

``up2 data example --out DIR`` writes what a user would bring, so that the "own data" guide runs
end to end on any machine (and its test runs every command of it):

* ``annotations/{train,val}.json``: COCO instances with the user's own categories (names the
  Shapes model never saw, ids that are neither contiguous nor start at 1), half the masks as
  polygons and half as RLE, and in each split one image without annotations (a negative);
* ``images/{train,val}/``: the images;
* ``cls/{train,val}/<folder>/``: an image-folder tree with ImageNet-like folder ids and a
  ``cls/classes.txt`` of readable names;
* ``captions_{train,val}.jsonl``: one ``{"image", "caption"}`` row per caption;
* ``data.yaml``: the dataset file naming all five tasks.

The category names are shape words Shapes never uses ("coin" for circle, "tile" for square...):
a model trained on Shapes has to carry what it learnt over to them.  The images are not Shapes'
128 px squares: each is rescaled to one of :data:`SIZES` (landscape, portrait, wide, square,
larger and smaller than the models' 128 px), with its boxes, polygons and masks, so that
everything built on the example exercises resizing, as real photos do.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from up2core.data.shapes import SHAPES, ShapesSpec, generate_shapes

#: the new name of each Shapes shape, and its plural (captions use both)
NEW_NAMES: dict[str, tuple[str, str]] = {
    'circle': ('coin', 'coins'), 'square': ('tile', 'tiles'), 'triangle': ('wedge', 'wedges'),
    'diamond': ('rhombus', 'rhombi'), 'pentagon': ('badge', 'badges'),
    'hexagon': ('nut', 'nuts'), 'star': ('sparkle', 'sparkles'),
    'cross': ('plus sign', 'plus signs'),
}
#: the category id each new name gets: neither contiguous nor from 1
CATEGORY_IDS = (3, 8, 15, 42, 77, 101, 256, 999)
#: folder names of the image-folder tree (readable names are in classes.txt)
FOLDERS = tuple(f'n{index:04d}' for index in (17, 23, 5, 88, 41, 60, 12, 99))
_PLURALS = {'circle': 'circles', 'square': 'squares', 'triangle': 'triangles',
            'diamond': 'diamonds', 'pentagon': 'pentagons', 'hexagon': 'hexagons',
            'star': 'stars', 'cross': 'crosses'}

#: ``(width, height)`` the example's images take, in turn
SIZES = ((160, 120), (96, 144), (224, 112), (128, 128), (240, 180), (100, 150))

DATA_YAML = """\
# A dataset file (up2 train CONFIG --data data.yaml): paths are relative to `path`.
path: .
name: {name}
detection:
  train: {{ann: annotations/train.json, images: images/train}}
  val:   {{ann: annotations/val.json,   images: images/val}}
segmentation:
  train: {{ann: annotations/train.json, images: images/train}}
  val:   {{ann: annotations/val.json,   images: images/val}}
classification: {{train: cls/train, val: cls/val}}
captioning:
  train: {{ann: captions_train.jsonl}}
  val:   {{ann: captions_val.jsonl}}
retrieval:
  train: {{ann: captions_train.jsonl}}
  val:   {{ann: captions_val.jsonl}}
"""


def _rename(caption: str) -> str:
    for shape, (name, plural) in NEW_NAMES.items():
        caption = re.sub(rf'\b{_PLURALS[shape]}\b', plural, caption)
        caption = re.sub(rf'\b{shape}\b', name, caption)
    return caption


def _polygons(rle: dict) -> list[list[float]]:
    """A compressed-RLE mask as COCO polygons (outer contours, >= 3 points each)."""
    import cv2
    from pycocotools import mask as mask_utils

    binary = mask_utils.decode(rle)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _rescale_split(source: Path, split: str, start: int) -> None:
    """Rescale the images of ``split`` to :data:`SIZES` (in turn, from ``start``) and their
    instances (``instances_{split}.json``: boxes, areas, RLE masks) with them, in place."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils

    path = source / 'annotations' / f'instances_{split}.json'
    instances = json.loads(path.read_text())
    factors = {}
    for k, image in enumerate(instances['images']):
        width, height = SIZES[(start + k) % len(SIZES)]
        file = source / 'images' / split / image['file_name']
        pixels = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        area = width * height < pixels.shape[0] * pixels.shape[1]
        cv2.imwrite(str(file), cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA
                                          if area else cv2.INTER_LINEAR))
        factors[image['id']] = (width / image['width'], height / image['height'], width, height)
        image.update(width=width, height=height)
    kept = []
    for ann in instances['annotations']:
        _, _, width, height = factors[ann['image_id']]
        rle = dict(ann['segmentation'], counts=ann['segmentation']['counts'].encode('ascii'))
        mask = cv2.resize(mask_utils.decode(rle), (width, height),
                          interpolation=cv2.INTER_NEAREST)
        if not mask.any():  # too small to survive the shrink
            continue
        encoded = mask_utils.encode(np.asfortranarray(mask))
        ann['segmentation'] = {'size': [height, width],
                               'counts': encoded['counts'].decode('ascii')}
        ann['bbox'] = [float(v) for v in mask_utils.toBbox(encoded)]  # the mask's own extent
        ann['area'] = float(mask.sum())
        kept.append(ann)
    instances['annotations'] = kept
    path.write_text(json.dumps(instances))


def write_example_data(out: str | Path, num_train: int = 200, num_val: int = 50,
                       seed: int = 7, overwrite: bool = False) -> Path:
    """Write the example dataset to ``out`` (see the module docstring); returns ``data.yaml``.

    Raises:
        FileExistsError: ``out`` is not empty and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"'{out}' is not empty; pass --overwrite to replace it, or "
                                  f'choose another folder')
        shutil.rmtree(out)
    source = out / '.shapes'
    generate_shapes(source, ShapesSpec(num_train=num_train, num_val=num_val, seed=seed))
    for offset, split in enumerate(('train', 'val')):
        _rescale_split(source, split, start=offset)
    categories = [{'id': cid, 'name': NEW_NAMES[shape][0], 'supercategory': 'shape'}
                  for cid, shape in zip(CATEGORY_IDS, SHAPES)]
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    (out / 'cls').mkdir(parents=True, exist_ok=True)
    for split in ('train', 'val'):
        images_dir = out / 'images' / split
        shutil.copytree(source / 'images' / split, images_dir)
        instances = json.loads((source / 'annotations' / f'instances_{split}.json').read_text())
        negative = instances['images'][-1]['id']  # its objects' annotations are left out
        annotations = []
        for ann in instances['annotations']:
            if ann['image_id'] == negative:
                continue
            ann = {k: v for k, v in ann.items() if k != 'attributes'}
            ann['category_id'] = CATEGORY_IDS[ann['category_id'] - 1]
            ann['id'] = 1000 + ann['id'] * 3  # the user's own ids
            if ann['id'] % 2:
                polygons = _polygons(ann['segmentation'])
                if polygons:
                    ann['segmentation'] = polygons
            annotations.append(ann)
        (out / 'annotations' / f'{split}.json').write_text(json.dumps(
            {'images': instances['images'], 'annotations': annotations,
             'categories': categories}, indent=1))
        for folder in FOLDERS:  # every class folder, even one this split has no image of
            (out / 'cls' / split / folder).mkdir(parents=True, exist_ok=True)
        for line in (source / 'classification' / f'{split}.txt').read_text().splitlines():
            path, label = line.rsplit(maxsplit=1)
            folder = out / 'cls' / split / FOLDERS[int(label)]
            shutil.copy(source / path, folder / Path(path).name)
        captions = json.loads((source / 'annotations' / f'captions_{split}.json').read_text())
        files = {image['id']: image['file_name'] for image in captions['images']}
        with (out / f'captions_{split}.jsonl').open('w') as handle:
            for ann in captions['annotations']:
                handle.write(json.dumps({'image': f"images/{split}/{files[ann['image_id']]}",
                                         'caption': _rename(ann['caption'])}) + '\n')
    # readable names, one per folder in sorted folder order
    (out / 'cls' / 'classes.txt').write_text(''.join(
        f'{NEW_NAMES[SHAPES[FOLDERS.index(folder)]][0]}\n' for folder in sorted(FOLDERS)))
    shutil.rmtree(source)
    data_yaml = out / 'data.yaml'
    data_yaml.write_text(DATA_YAML.format(name=out.name or 'example'))
    return data_yaml
