"""How long ``up2 data check`` takes on a COCO file of ~100k records, next to a reference.

Writes a COCO instances json of ``--images`` images (small PNGs, written once into ``--root``)
and ``--annotations`` annotations (polygons and boxes), then times, in the same run:

* the reference: ``pycocotools.coco.COCO(ann_file)``, the index mmdet builds of the same file
  when a training run starts (json parsing and indexing, no image);
* ``check_data`` on the annotations only (``up2 data check --no-images``);
* ``check_data`` with every image header read (the default of ``up2 data check``).

Prints and saves the median seconds of 3 runs each and the ratios to the reference.

    python benchmarks/data_check.py [--images 20000] [--annotations 80000]
        [--root /tmp/up2_check_bench] [--out benchmarks/results/data_check.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_dataset(root: Path, images: int, annotations: int, seed: int = 0) -> Path:
    """The images (once; reused by later runs) and the json (written every time)."""
    rng = np.random.default_rng(seed)
    folder = root / 'images'
    folder.mkdir(parents=True, exist_ok=True)
    width, height = 64, 48
    for index in range(images):
        path = folder / f'{index:06d}.png'
        if not path.exists():
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, compress_level=1)
    records, anns = [], []
    for index in range(images):
        records.append({'id': index + 1, 'file_name': f'{index:06d}.png', 'width': width,
                        'height': height})
    for index in range(annotations):
        x, y = float(rng.integers(0, 40)), float(rng.integers(0, 30))
        w, h = float(rng.integers(4, 24)), float(rng.integers(4, 18))
        anns.append({'id': index + 1, 'image_id': int(rng.integers(1, images + 1)),
                     'category_id': int(rng.integers(1, 81)) * 3, 'iscrowd': 0,
                     'bbox': [x, y, w, h], 'area': w * h,
                     'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    categories = [{'id': k * 3, 'name': f'part {k}'} for k in range(1, 81)]
    ann_file = root / 'instances.json'
    ann_file.write_text(json.dumps({'images': records, 'annotations': anns,
                                    'categories': categories}))
    (root / 'data.yaml').write_text(
        'detection: {train: {ann: instances.json, images: images}}\n')
    return root / 'data.yaml'


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    """The median seconds of ``repeats`` calls (the first call of a process also pays for
    imports and allocator warm-up: about 2 s here), and the last result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=20000)
    parser.add_argument('--annotations', type=int, default=80000)
    parser.add_argument('--root', default='/tmp/up2_check_bench')
    parser.add_argument('--out', default='benchmarks/results/data_check.json')
    args = parser.parse_args()

    from pycocotools.coco import COCO

    from up2core.data.check import check_data
    from up2core.data.dataset_file import load_data_file

    data_file = write_dataset(Path(args.root), args.images, args.annotations)
    data = load_data_file(data_file)
    records = args.images + args.annotations
    with contextlib.redirect_stdout(io.StringIO()):
        reference, _ = timed(lambda: COCO(str(Path(args.root) / 'instances.json')))
    no_images, report = timed(lambda: check_data(data, images=False))
    assert not report.errors, report.lines()
    with_images, report = timed(lambda: check_data(data, images=True))
    assert not report.errors, report.lines()
    result = {
        'records': records, 'images': args.images, 'annotations': args.annotations,
        'reference_pycocotools_index_s': round(reference, 2),
        'check_annotations_only_s': round(no_images, 2),
        'check_with_image_headers_s': round(with_images, 2),
        'ratio_annotations_only': round(no_images / reference, 2),
        'ratio_with_image_headers': round(with_images / reference, 2),
        'records_per_s_with_images': round(records / with_images),
        'machine': f'{platform.machine()}, {os.cpu_count()} cores',
        'note': 'median of 3 runs each in one process; the image headers come from the page '
                'cache after the first run (a cold disk adds its read time)',
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
    main()
