"""One picture of every task's output on an image (``up2 infer --out``).

Each task draws itself (:meth:`Task.draw`: detection and segmentation draw boxes, masks and
names with mmdet's visualiser); this module only lays the drawings side by side, after the input
image, above a panel with every task's printed result (the caption, the top classes, the ranked
texts...).  It knows no task: a plugin's task appears with its own drawing and its own lines.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: tiles are scaled to this height (small images are enlarged so that labels stay legible)
TILE_HEIGHT = 320
PANEL_WIDTH_MIN = 640


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _tile(image: Image.Image, title: str, font) -> Image.Image:
    scale = TILE_HEIGHT / image.height
    resized = image.resize((max(1, round(image.width * scale)), TILE_HEIGHT),
                           Image.BILINEAR if scale > 1 else Image.LANCZOS)
    tile = Image.new('RGB', (resized.width, TILE_HEIGHT + 24), 'white')
    tile.paste(resized, (0, 24))
    ImageDraw.Draw(tile).text((4, 4), title, fill='black', font=font)
    return tile


def draw_results(model, image_bgr: np.ndarray, samples: dict[str, Any], out_file: str) -> None:
    """Save one picture of ``samples`` (task -> predicted sample) on ``image_bgr``.

    With one task, the task's own drawing (:meth:`Task.draw`).  With several, or one without
    a drawing of its own (captioning, retrieval): the input and each task's drawing side by
    side, then every task's result lines.
    """
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    tasks = list(samples)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    if len(tasks) == 1:
        try:
            model.tasks[tasks[0]].draw(rgb, samples[tasks[0]], str(out_file))
            return
        except NotImplementedError:
            pass  # the input and the task's printed result, as for several tasks
    font = _font(14)
    tiles = [_tile(Image.fromarray(rgb), 'input', font)]
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            drawn = Path(tmp) / f'{task}.png'
            try:
                model.tasks[task].draw(rgb.copy(), samples[task], str(drawn))
            except NotImplementedError:
                continue
            with Image.open(drawn) as picture:
                tiles.append(_tile(picture.convert('RGB'), task, font))
    lines: list[str] = []
    for task in tasks:
        lines.append(f'[{task}]')
        lines += [line.rstrip() for line in
                  model.tasks[task].format_result(model.tasks[task].to_result(samples[task]))]
    line_height = 18
    width = max(sum(t.width for t in tiles) + 8 * (len(tiles) - 1), PANEL_WIDTH_MIN)
    height = tiles[0].height + 12 + line_height * len(lines) + 8
    canvas = Image.new('RGB', (width, height), 'white')
    x = 0
    for tile in tiles:
        canvas.paste(tile, (x, 0))
        x += tile.width + 8
    draw = ImageDraw.Draw(canvas)
    y = tiles[0].height + 12
    for line in lines:
        draw.text((6, y), line, fill='black' if line.startswith('[') else (40, 40, 40),
                  font=font)
        y += line_height
    canvas.save(out_file)


__all__ = ['draw_results']
