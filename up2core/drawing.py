"""Labelled regions drawn on an image, every label inside the picture.

One drawing for what a dataset holds (``up2 data browse``: ground truth) and what a model answers
(``up2 infer --out``: detections, masks): boxes outlined, masks tinted, and each box's text on a
filled tab above it, or inside its top edge when the box touches the top of the picture, and
moved left when it would run off the right edge.  mmdet's ``DetLocalVisualizer`` writes labels
at the box corner whatever the picture's size, so on small images they ran off the edge.

Examples:
    >>> canvas = draw_regions(image, [[4, 4, 40, 30]], ['red circle: 0.93'])  # doctest: +SKIP
    >>> canvas.save('out.png')                                               # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np


def palette(index: int) -> tuple[int, int, int]:
    """A bright colour per integer, far from its neighbours' (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def font(size: int):
    """Pillow's own font at ``size`` pixels (no font file needed)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one size only
        return ImageFont.load_default()


def label_position(box: Sequence[float], size: tuple[int, int], canvas: tuple[int, int]
                   ) -> tuple[float, float]:
    """Top-left corner of a ``size`` (width, height) label for ``box`` on a ``canvas`` (width,
    height): above the box if there is room, else inside its top; never past an edge."""
    x1, y1 = box[0], box[1]
    width, height = size
    x = min(max(0.0, x1), max(0.0, canvas[0] - width))
    y = y1 - height if y1 >= height else max(0.0, y1)
    return x, min(y, max(0.0, canvas[1] - height))


def draw_regions(image: np.ndarray, boxes: Sequence[Sequence[float]], texts: Sequence[str],
                 masks: Sequence[np.ndarray] | None = None,
                 colour_keys: Sequence[int] | None = None, min_side: int = 384):
    """``image`` (RGB array) enlarged (nearest, by a whole factor) to at least ``min_side``
    pixels on its longer side, with ``boxes`` (x1, y1, x2, y2 in image pixels), their ``texts``
    and optional binary ``masks`` drawn; ``colour_keys`` pick each region's colour (default:
    its index).  Returns a PIL RGB image."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.ascontiguousarray(image)).convert('RGB')
    scale = max(1, min_side // max(canvas.size))
    canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.NEAREST)
    overlay = Image.new('RGBA', canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    label_font = font(13)
    keys = list(range(len(boxes))) if colour_keys is None else list(colour_keys)
    for k, mask in enumerate(masks if masks is not None else []):  # masks first: labels on top
        mask = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 140)
        overlay.paste((*palette(int(keys[k])), 140), (0, 0),
                      mask.resize(canvas.size, Image.NEAREST))
    for k, (box, text) in enumerate(zip(boxes, texts)):
        colour = palette(int(keys[k]))
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=(*colour, 255), width=2)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=label_font)
        width, height = right - left + 4, bottom - top + 4
        x, y = label_position((x1, y1), (width, height), canvas.size)
        draw.rectangle([x, y, x + width, y + height], fill=(*colour, 220))
        draw.text((x + 2 - left, y + 2 - top), text, fill=(0, 0, 0, 255), font=label_font)
    return Image.alpha_composite(canvas.convert('RGBA'), overlay).convert('RGB')
