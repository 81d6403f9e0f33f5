"""Shapes: the embedded dataset, generated deterministically in real formats.

Each image holds 1-4 flat-coloured, non-overlapping shapes on a noisy grey background.  The
generator writes what the real datasets' readers expect:

======================================  =========================================================
``images/{train,val}/NNNNNN.png``       lossless, so the masks match the pixels exactly
``annotations/instances_{split}.json``  COCO instances: bbox, compressed-RLE mask, category, area
                                        (+ ``attributes``: colour and size words)
``annotations/instances_colour_{split}.json``  the same instances with colour-shape categories
                                        ("red star", 56 of them; ``novel`` marks the held-out ones)
``annotations/captions_{split}.json``   COCO captions: >= 3 different captions per image naming
                                        colours, shapes, sizes, counts and relative positions
``classification/{split}.txt``          ImageNet-style list: ``images/<split>/<file> <label>``,
                                        the label is the image's largest (dominant) shape
``classification/classes.txt``          one class name per line, in label order
``meta.json``                           the spec, categories, colours, sizes, held-out pairs, counts
======================================  =========================================================

Held-out pairs: the colour-shape combinations in :data:`HELD_OUT_PAIRS` never occur in the train
split and are over-represented in the val split, so that later tasks can test detection of novel
category names ("red star") that training never showed.

The same :class:`ShapesSpec` always produces byte-identical files (fixed seeds per split, sorted
JSON, PNG without timestamps).

Examples:
    >>> from up2core.data.shapes import ShapesSpec, generate_shapes
    >>> summary = generate_shapes('data/shapes', ShapesSpec(num_train=20, num_val=5))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FORMAT_VERSION = 2  # 2: + instances_colour_{split}.json

#: The shape categories, in label order (COCO category id = index + 1).
SHAPES: tuple[str, ...] = ('circle', 'square', 'triangle', 'diamond', 'pentagon', 'hexagon',
                           'star', 'cross')

#: Colour words and their RGB values: saturated colours that the grey background never reaches.
COLOURS: dict[str, tuple[int, int, int]] = {
    'red': (220, 30, 30),
    'green': (30, 180, 40),
    'blue': (30, 60, 220),
    'yellow': (240, 220, 20),
    'purple': (140, 40, 190),
    'orange': (250, 130, 10),
    'white': (250, 250, 250),
}

#: Size words and the shape radius each stands for, as a fraction of the image side.
SIZES: dict[str, tuple[float, float]] = {
    'small': (0.08, 0.11),
    'medium': (0.13, 0.17),
    'large': (0.20, 0.24),
}

#: Colour-shape pairs absent from the train split (novel category names for later tasks).
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ('red', 'star'), ('blue', 'circle'), ('green', 'triangle'), ('yellow', 'hexagon'),
)



def colour_shape_names() -> list[str]:
    """The 56 colour-shape category names ("red circle", ...), colour-major; COCO category id of
    ``instances_colour_*.json`` = index + 1."""
    return [f'{colour} {shape}' for colour in COLOURS for shape in SHAPES]


def held_out_names() -> list[str]:
    """The colour-shape names that never occur in the train split ("red star", ...)."""
    return [f'{colour} {shape}' for colour, shape in HELD_OUT_PAIRS]


_COUNT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five')
_COUNT_PROBS = (0.35, 0.30, 0.20, 0.15)  # 1, 2, 3, 4 objects
_BACKGROUND = (90, 170)  # grey level range of the background, noise included
_SPLITS = ('train', 'val')


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate.  Equal specs give byte-identical datasets."""

    num_train: int = 2000
    num_val: int = 300
    image_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 48:
            raise ValueError(f'image_size must be >= 48 pixels, got {self.image_size}')
        if self.num_train < 0 or self.num_val < 0:
            raise ValueError('num_train and num_val must be >= 0')


# --------------------------------------------------------------------------- geometry


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices of ``shape`` inside the unit circle, centred on 0 (x right, y down)."""

    def regular(n: int, phase: float = -math.pi / 2, radius: float = 1.0) -> np.ndarray:
        angles = phase + 2 * math.pi * np.arange(n) / n
        return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    if shape == 'circle':
        return regular(64)
    if shape == 'square':
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.75
    if shape == 'triangle':
        return regular(3) + np.array([0.0, 0.2])
    if shape == 'diamond':
        return np.array([[0, -1], [0.65, 0], [0, 1], [-0.65, 0]])
    if shape == 'pentagon':
        return regular(5)
    if shape == 'hexagon':
        return regular(6, phase=0.0)
    if shape == 'star':
        outer, inner = regular(5), regular(5, phase=-math.pi / 2 + math.pi / 5, radius=0.45)
        return np.stack([outer, inner], axis=1).reshape(-1, 2)
    if shape == 'cross':
        a, b = 0.3, 0.95
        return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                         [-a, a], [-b, a], [-b, -a], [-a, -a]])
    raise ValueError(f'unknown shape {shape!r}')


_POLYGONS = {s: _unit_polygon(s) for s in SHAPES}


def _position_word(cx: float, cy: float, size: int) -> str:
    col = ('left', '', 'right')[min(int(3 * cx / size), 2)]
    row = ('top', '', 'bottom')[min(int(3 * cy / size), 2)]
    return ' '.join(w for w in (row, col) if w) or 'centre'


# --------------------------------------------------------------------------- sampling


@dataclass
class _Object:
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


_UNIT_AREAS = {s: _polygon_area(p) for s, p in _POLYGONS.items()}
_DOMINANCE = 1.3  # the dominant shape's area exceeds every other's by at least this factor


def _sample_object(rng: np.random.Generator, split: str, size: str, image_size: int,
                   novel: bool) -> tuple[str, str, float]:
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    if split == 'train':
        while (colour, shape) in HELD_OUT_PAIRS:
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    elif novel:
        colour, shape = HELD_OUT_PAIRS[int(rng.integers(len(HELD_OUT_PAIRS)))]
    lo, hi = SIZES[size]
    return shape, colour, float(rng.uniform(lo, hi)) * image_size


def _sample_layout(rng: np.random.Generator, split: str, image_size: int) -> list[_Object]:
    """Non-overlapping objects; the first (dominant) is in a larger size class than the others
    and covers at least 1.3 times the area of any of them, so the image's class is clear."""
    count = int(rng.choice(len(_COUNT_PROBS), p=_COUNT_PROBS)) + 1
    size_names = list(SIZES)
    dominant_size = size_names[int(rng.integers(3))] if count == 1 \
        else size_names[int(rng.integers(1, 3))]  # medium or large when there are others
    novel = split != 'train' and rng.random() < 0.3  # val: show the novel pairs often
    shape, colour, radius = _sample_object(rng, split, dominant_size, image_size, novel)
    dominant_area = _UNIT_AREAS[shape] * radius ** 2
    candidates = [(shape, colour, dominant_size, radius)]
    for _ in range(count - 1):
        for _attempt in range(100):
            size = size_names[int(rng.integers(size_names.index(dominant_size)))]
            shape, colour, radius = _sample_object(rng, split, size, image_size, False)
            if _UNIT_AREAS[shape] * radius ** 2 * _DOMINANCE < dominant_area:
                candidates.append((shape, colour, size, radius))
                break
    objects: list[_Object] = []
    for shape, colour, size, radius in candidates:
        for _ in range(200):
            cx, cy = rng.uniform(radius + 1, image_size - radius - 1, size=2)
            if all(math.hypot(cx - o.cx, cy - o.cy) > radius + o.radius + 3 for o in objects):
                objects.append(_Object(shape, colour, size, float(cx), float(cy), radius))
                break
    return objects


def _render(rng: np.random.Generator, objects: list[_Object], image_size: int
            ) -> tuple[Image.Image, list[np.ndarray]]:
    grey = int(rng.integers(_BACKGROUND[0] + 12, _BACKGROUND[1] - 12))
    noise = rng.integers(-10, 11, size=(image_size, image_size, 3))
    pixels = np.clip(grey + noise, *_BACKGROUND).astype(np.uint8)
    image = Image.fromarray(pixels, 'RGB')
    masks = []
    for obj in objects:
        points = _POLYGONS[obj.shape] * obj.radius + np.array([obj.cx, obj.cy])
        mask_image = Image.new('L', (image_size, image_size), 0)
        ImageDraw.Draw(mask_image).polygon([tuple(p) for p in points.tolist()], fill=255)
        image.paste(COLOURS[obj.colour], (0, 0), mask_image)  # exactly the mask's pixels
        masks.append(np.asarray(mask_image) > 0)
    return image, masks


# --------------------------------------------------------------------------- captions


def _phrase(obj: _Object, article: bool = True) -> str:
    words = f'{obj.size} {obj.colour} {obj.shape}'
    return f'a {words}' if article else words


def _relation(a: _Object, b: _Object) -> str:
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) >= abs(dy):
        return 'to the left of' if dx > 0 else 'to the right of'
    return 'above' if dy > 0 else 'below'


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]


def make_captions(objects: list[_Object], image_size: int) -> list[str]:
    """Three to four different captions; together they name every object's attributes."""
    by_x = sorted(objects, key=lambda o: o.cx)
    n = len(objects)
    noun = 'shape' if n == 1 else 'shapes'
    order = '' if n == 1 else ' from left to right'
    captions = [f'{_COUNT_WORDS[n]} {noun}{order}: {_join([_phrase(o) for o in by_x])}.']
    placed = [f'{_phrase(o)} at the {_position_word(o.cx, o.cy, image_size)}'
              if _position_word(o.cx, o.cy, image_size) != 'centre'
              else f'{_phrase(o)} in the centre' for o in objects]
    captions.append(_join(placed) + '.')
    if n == 1:
        captions.append(f'there is exactly one {objects[0].colour} {objects[0].shape}, '
                        f'and it is {objects[0].size}.')
    else:
        dominant, other = objects[0], objects[1]
        captions.append(f'{_phrase(dominant)} {_relation(dominant, other)} {_phrase(other)}.')
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.shape] = counts.get(obj.shape, 0) + 1
    tally = [f"{_COUNT_WORDS[c]} {s if c == 1 else s + 'es' if s.endswith('x') else s + 's'}"
             for s, c in sorted(counts.items())]
    colours = sorted({o.colour for o in objects})
    captions.append(f"{_join(tally)} in {_join(colours)} on a grey background.")
    return captions


# --------------------------------------------------------------------------- writing


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _dump(obj: dict, path: Path) -> None:
    path.write_text(json.dumps(obj, sort_keys=True, separators=(',', ':')) + '\n')


def _generate_split(out: Path, split: str, count: int, spec: ShapesSpec) -> dict:
    rng = np.random.default_rng([spec.seed, _SPLITS.index(split)])
    image_dir = out / 'images' / split
    image_dir.mkdir(parents=True, exist_ok=True)
    categories = [{'id': i + 1, 'name': s, 'supercategory': 'shape'} for i, s in enumerate(SHAPES)]
    images, instances, captions, cls_lines = [], [], [], []
    for index in range(count):
        objects = _sample_layout(rng, split, spec.image_size)
        image, masks = _render(rng, objects, spec.image_size)
        file_name = f'{index:06d}.png'
        image.save(image_dir / file_name, format='PNG', optimize=False)
        image_id = index + 1
        images.append({'id': image_id, 'file_name': file_name, 'width': spec.image_size,
                       'height': spec.image_size})
        for obj, mask in zip(objects, masks):
            instances.append({
                'id': len(instances) + 1, 'image_id': image_id,
                'category_id': SHAPES.index(obj.shape) + 1, 'iscrowd': 0,
                'bbox': _bbox(mask), 'area': float(mask.sum()), 'segmentation': _rle(mask),
                'attributes': {'colour': obj.colour, 'size': obj.size,
                               'novel': (obj.colour, obj.shape) in HELD_OUT_PAIRS},
            })
        for text in make_captions(objects, spec.image_size):
            captions.append({'id': len(captions) + 1, 'image_id': image_id, 'caption': text})
        cls_lines.append(f'images/{split}/{file_name} {SHAPES.index(objects[0].shape)}')
    info = {'description': f'UP2 Shapes ({split})', 'version': str(FORMAT_VERSION)}
    _dump({'info': info, 'images': images, 'annotations': instances, 'categories': categories},
          out / 'annotations' / f'instances_{split}.json')
    # The same instances, categorised by colour-shape name: detection with open-vocabulary names.
    names = colour_shape_names()
    novel = set(held_out_names())
    colour_categories = [{'id': i + 1, 'name': n, 'supercategory': n.split()[1],
                          'novel': n in novel} for i, n in enumerate(names)]
    colour_instances = [
        {**ann, 'category_id': names.index(f"{ann['attributes']['colour']} "
                                           f"{SHAPES[ann['category_id'] - 1]}") + 1}
        for ann in instances]
    _dump({'info': info, 'images': images, 'annotations': colour_instances,
           'categories': colour_categories},
          out / 'annotations' / f'instances_colour_{split}.json')
    _dump({'info': info, 'images': images, 'annotations': captions},
          out / 'annotations' / f'captions_{split}.json')
    (out / 'classification' / f'{split}.txt').write_text(''.join(f'{line}\n' for line in cls_lines))
    return {'images': len(images), 'instances': len(instances), 'captions': len(captions)}


def read_meta(root: str | Path) -> dict | None:
    """The ``meta.json`` of a generated Shapes folder, or None if there is none."""
    path = Path(root) / 'meta.json'
    return json.loads(path.read_text()) if path.is_file() else None


def generate_shapes(out: str | Path, spec: ShapesSpec | None = None, overwrite: bool = False
                    ) -> dict:
    """Write the Shapes dataset to ``out`` and return a summary (also saved as ``meta.json``).

    If ``out`` already holds Shapes generated from the same spec, nothing is written.

    Raises:
        FileExistsError: ``out`` holds something else and ``overwrite`` is False.
    """
    spec = spec or ShapesSpec()
    out = Path(out)
    meta = read_meta(out)
    if meta is not None and meta.get('spec') == asdict(spec) \
            and meta.get('format_version') == FORMAT_VERSION:
        return meta
    if out.exists() and any(out.iterdir()):
        older_format = meta is not None and meta.get('spec') == asdict(spec) \
            and meta.get('format_version', 0) < FORMAT_VERSION
        if not overwrite and not older_format:
            raise FileExistsError(f"'{out}' is not empty and does not hold Shapes generated with "
                                  f"this spec; pass --overwrite (overwrite=True) to replace it, "
                                  f"or choose another folder.")
        shutil.rmtree(out)
    for sub in ('annotations', 'classification'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    counts = {split: _generate_split(out, split, n, spec)
              for split, n in zip(_SPLITS, (spec.num_train, spec.num_val))}
    (out / 'classification' / 'classes.txt').write_text(''.join(f'{s}\n' for s in SHAPES))
    meta = {
        'format_version': FORMAT_VERSION, 'spec': asdict(spec), 'shapes': list(SHAPES),
        'colours': {k: list(v) for k, v in COLOURS.items()}, 'sizes': list(SIZES),
        'held_out_pairs': [list(p) for p in HELD_OUT_PAIRS], 'splits': counts,
    }
    _dump(meta, out / 'meta.json')
    return meta


def ensure_shapes(root: str | Path, **spec_kwargs) -> Path:
    """Generate Shapes under ``root`` unless it is already there (configs call this on first use)."""
    generate_shapes(root, ShapesSpec(**spec_kwargs))
    return Path(root)
