import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from up2core.data.shapes import (COLOURS, HELD_OUT_PAIRS, SHAPES, SIZES, ShapesSpec,
                                 generate_shapes)

SPEC = ShapesSpec(num_train=80, num_val=40, image_size=64, seed=3)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root, SPEC)
    return root


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob('*') if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_spec_gives_byte_identical_files(shapes, tmp_path):
    generate_shapes(tmp_path / 'again', SPEC)
    assert _digest(tmp_path / 'again') == _digest(shapes)


def test_another_seed_gives_other_data(shapes, tmp_path):
    generate_shapes(tmp_path / 'other', ShapesSpec(num_train=80, num_val=40, image_size=64,
                                                   seed=4))
    assert _digest(tmp_path / 'other') != _digest(shapes)


def test_layout_and_meta(shapes):
    meta = json.loads((shapes / 'meta.json').read_text())
    assert meta['splits']['train']['images'] == 80 and meta['splits']['val']['images'] == 40
    assert meta['shapes'] == list(SHAPES) and len(SHAPES) >= 8 and len(COLOURS) >= 5
    assert len(list((shapes / 'images' / 'train').glob('*.png'))) == 80
    assert (shapes / 'classification' / 'classes.txt').read_text().split() == list(SHAPES)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_pycocotools_round_trip_and_masks_match_pixels(shapes, split):
    coco = COCO(str(shapes / 'annotations' / f'instances_{split}.json'))
    assert sorted(c['name'] for c in coco.loadCats(coco.getCatIds())) == sorted(SHAPES)
    checked = 0
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        pixels = np.asarray(Image.open(shapes / 'images' / split / info['file_name']))
        union = np.zeros(pixels.shape[:2], bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            mask = coco.annToMask(ann).astype(bool)
            colour = np.array(COLOURS[ann['attributes']['colour']])
            assert mask.sum() == ann['area'] > 0
            # every mask pixel has the object's colour...
            assert (pixels[mask] == colour).all()
            # ...and the box is the mask's tight box
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                                   ys.max() + 1 - ys.min()]
            union |= mask
            checked += 1
        # outside the masks only the grey background remains (no object colour leaks out)
        background = pixels[~union].astype(int)
        spread = background.max(axis=1) - background.min(axis=1)
        assert (spread <= 20).all() and background.min() >= 90 and background.max() <= 170
    assert checked >= coco.getImgIds().__len__()


def test_captions_are_several_different_and_name_the_attributes(shapes):
    coco = COCO(str(shapes / 'annotations' / 'captions_train.json'))
    instances = COCO(str(shapes / 'annotations' / 'instances_train.json'))
    count_words = {1: 'one', 2: 'two', 3: 'three', 4: 'four'}
    caption_sets = []
    for image_id in coco.getImgIds():
        captions = [a['caption'] for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))]
        assert len(set(captions)) >= 3
        text = ' '.join(captions)
        anns = instances.loadAnns(instances.getAnnIds(imgIds=image_id))
        for ann in anns:
            shape = SHAPES[ann['category_id'] - 1]
            phrase = f"{ann['attributes']['size']} {ann['attributes']['colour']} {shape}"
            assert phrase in text
        assert captions[0].startswith(count_words[len(anns)])
        if len(anns) > 1:
            assert re.search(r'to the (left|right) of|above|below', text)
        assert re.search(r'top|bottom|left|right|centre', text)
        caption_sets.append(frozenset(captions))
    # captions tell images apart: nearly every image has a caption set of its own
    unique = sum(caption_sets.count(s) == 1 for s in caption_sets) / len(caption_sets)
    assert unique >= 0.95, unique


def test_held_out_pairs_are_absent_from_train_and_present_in_val(shapes):
    def pairs(split):
        data = json.loads((shapes / 'annotations' / f'instances_{split}.json').read_text())
        return {(a['attributes']['colour'], SHAPES[a['category_id'] - 1])
                for a in data['annotations']}

    held_out = set(HELD_OUT_PAIRS)
    assert not pairs('train') & held_out
    assert pairs('val') & held_out


def test_classification_label_is_the_largest_shape(shapes):
    coco = COCO(str(shapes / 'annotations' / 'instances_val.json'))
    by_file = {img['file_name']: img['id'] for img in coco.loadImgs(coco.getImgIds())}
    lines = (shapes / 'classification' / 'val.txt').read_text().splitlines()
    assert len(lines) == 40
    for line in lines:
        path, label = line.split()
        assert (shapes / path).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=by_file[Path(path).name]))
        largest = max(anns, key=lambda a: a['area'])
        others = [a['area'] for a in anns if a is not largest]
        assert largest['category_id'] - 1 == int(label)
        assert all(largest["area"] > 1.1 * area for area in others)


def test_sizes_are_those_the_captions_name(shapes):
    data = json.loads((shapes / 'annotations' / 'instances_train.json').read_text())
    radii = {size: [] for size in SIZES}
    for ann in data['annotations']:
        radii[ann['attributes']['size']].append(max(ann['bbox'][2:]) / 2 / SPEC.image_size)
    assert np.mean(radii['small']) < np.mean(radii['medium']) < np.mean(radii['large'])


def test_existing_folder_is_not_overwritten_by_accident(shapes, tmp_path):
    (tmp_path / 'keep.txt').write_text('precious')
    with pytest.raises(FileExistsError, match='--overwrite'):
        generate_shapes(tmp_path, SPEC)
    assert (tmp_path / 'keep.txt').read_text() == 'precious'
    meta = generate_shapes(shapes, SPEC)  # same spec: nothing to do
    assert meta['spec']['seed'] == 3


def test_bad_spec_is_rejected():
    with pytest.raises(ValueError, match='image_size'):
        ShapesSpec(image_size=16)
