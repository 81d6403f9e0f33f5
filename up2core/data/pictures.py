"""Pictures of a user's data: ``up2 data stats`` and ``up2 data browse``.

* :func:`data_stats` counts what a dataset file holds (instances per class and split, box sizes
  and aspect ratios, images per class folder, caption lengths), and :func:`draw_stats` draws it
  as one picture: what ultralytics' ``labels.jpg`` gives its users;
* :func:`browse` draws samples as training sees them (after the config's training pipeline):
  boxes, masks, names, class labels and captions, whatever the sample carries; what mmdet's
  ``browse_dataset`` gives its users.  It draws the data-sample fields, so it draws a plugin
  task's samples too.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from up2core.data.captions import read_caption_file

#: at most this many boxes are kept per split for the size histograms
_MAX_BOXES = 50_000


def _coco_stats(ann: Path) -> dict:
    data = json.loads(ann.read_text(encoding='utf-8'))
    names = {c['id']: c['name'] for c in data.get('categories', [])}
    counts: Counter = Counter()
    sizes, aspects = [], []
    for item in data.get('annotations', []):
        name = names.get(item.get('category_id'))
        if name is None:
            continue
        counts[name] += 1
        box = item.get('bbox') or [0, 0, 0, 0]
        if len(sizes) < _MAX_BOXES and box[2] > 0 and box[3] > 0:
            sizes.append(math.sqrt(box[2] * box[3]))
            aspects.append(box[2] / box[3])
    return {'instances': {n: counts.get(n, 0) for n in names.values()},
            'images': len(data.get('images', [])),
            'box_size': sizes, 'box_aspect': aspects}


def _folder_stats(root: Path) -> dict:
    from up2core.data.image_folder import class_folders, images_of

    return {'images_per_class': {name: len(images_of(root / name))
                                 for name in class_folders(root)}}


def _caption_stats(ann: Path) -> dict:
    records = read_caption_file(ann)
    lengths = [len(text.split()) for _, _, texts in records for text in texts]
    return {'images': len(records), 'captions': len(lengths), 'caption_words': lengths}


def data_stats(data) -> dict:
    """``{task: {split: counts}}`` of a :class:`~up2core.data.dataset_file.DataFile` (box
    sizes and aspects and caption lengths as lists; a file shared by two tasks is read once)."""
    from up2core.data.check import _layout_of

    stats: dict = {}
    read: dict = {}
    for task, source in data.tasks.items():
        layout = _layout_of(task, source)
        for split, where in source.splits.items():
            key = (layout, str(where.ann), str(where.images))
            if key not in read:
                read[key] = (_coco_stats(where.ann) if layout == 'coco_instances' else
                             _folder_stats(where.images) if layout == 'image_folder' else
                             _caption_stats(where.ann))
            stats.setdefault(task, {'layout': layout, 'files': []})[split] = read[key]
            stats[task]['files'].append(list(key[1:]))
        if layout == 'image_folder':
            from up2core.data.layouts import image_folder_classes

            folders, names = image_folder_classes(source)
            readable = dict(zip(folders, names))
            for split in source.splits:
                counts = stats[task][split]['images_per_class']
                stats[task][split] = {'images_per_class': {
                    readable.get(folder, folder): n for folder, n in counts.items()}}
    return stats


def draw_stats(stats: dict, out: str | Path) -> Path:
    """One picture of :func:`data_stats`: a row of panels per kind of data."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = []
    drawn: list = []
    for task, entry in stats.items():
        layout = entry['layout']
        splits = {k: v for k, v in entry.items() if k not in ('layout', 'files')}
        if (layout, entry.get('files')) in drawn:
            continue  # detection and segmentation, captioning and retrieval often share files
        drawn.append((layout, entry.get('files')))
        if layout == 'coco_instances':
            panels += [('instances per class', task, splits, 'instances'),
                       ('box size (sqrt of area, pixels)', task, splits, 'box_size'),
                       ('box aspect (width / height, log scale)', task, splits, 'box_aspect')]
        elif layout == 'image_folder':
            panels.append(('images per class folder', task, splits, 'images_per_class'))
        else:
            panels.append(('caption length (words)', task, splits, 'caption_words'))
    columns = 3
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis('off')
    for ax, (title, task, splits, key) in zip(axes.flat, panels):
        ax.set_title(f'{task}: {title}', fontsize=10)
        if key in ('instances', 'images_per_class'):
            names = list(next(iter(splits.values()))[key])
            for split in splits.values():
                names += [n for n in split[key] if n not in names]
            width = 0.8 / max(1, len(splits))
            for k, (split, values) in enumerate(splits.items()):
                ax.bar(np.arange(len(names)) + k * width, [values[key].get(n, 0) for n in names],
                       width, label=split)
            ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
            ax.set_xticklabels([n[:14] for n in names], rotation=60, ha='right', fontsize=7)
        else:
            for split, values in splits.items():
                series = np.asarray(values[key], dtype=float)
                if key == 'box_aspect':
                    series = np.log2(series[series > 0])
                if series.size:
                    ax.hist(series, bins=30, alpha=0.6, label=split)
            if key == 'box_aspect':
                ax.set_xlabel('log2(width / height)')
        ax.legend(fontsize=8)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out


# --------------------------------------------------------------------------- browse


def _instances(sample) -> tuple[list, list, np.ndarray | None]:
    """``(boxes, labels, masks)`` a packed sample carries in ``gt_instances`` (lists of box
    corners and label indices, an ``[N, H, W]`` array or None); empty without instances."""
    instances = sample.get('gt_instances') if hasattr(sample, 'get') else None
    if instances is None or 'bboxes' not in instances:
        return [], [], None
    boxes = instances.bboxes
    boxes = (boxes.tensor if hasattr(boxes, 'tensor') else boxes).tolist()
    labels = instances.labels.tolist() if 'labels' in instances else [0] * len(boxes)
    masks = instances.masks if 'masks' in instances else None
    if masks is not None and hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    return boxes, labels, masks


def _name(names: list[str], label) -> str:
    return names[int(label)] if 0 <= int(label) < len(names) else str(label)


def draw_sample(image: np.ndarray, sample, names: list[str], out: Path) -> None:
    """Draw what a packed data sample carries on its image (RGB array): ``gt_instances``
    (boxes, masks, names), ``gt_label`` (a class name) and ``texts`` (captions)."""
    from PIL import Image, ImageDraw

    from up2core.drawing import draw_regions, font

    lines: list[str] = []
    boxes, labels, masks = _instances(sample)
    texts = [_name(names, label) for label in labels]
    canvas = draw_regions(image, boxes, texts, masks, colour_keys=[int(v) for v in labels])
    if hasattr(sample, 'get') and sample.get('gt_label') is not None:
        label = int(sample.get('gt_label'))
        lines.append(f'class: {names[label] if 0 <= label < len(names) else label}')
    if hasattr(sample, 'get') and sample.get('texts'):
        lines += [f'"{t}"' for t in sample.get('texts')[:4]]
    if lines:
        wrapped = []
        for line in lines:
            while len(line) > canvas.width // 6:
                cut = line.rfind(' ', 0, canvas.width // 6)
                cut = cut if cut > 0 else canvas.width // 6
                wrapped.append(line[:cut])
                line = line[cut:].lstrip()
            wrapped.append(line)
        footer = Image.new('RGB', (canvas.width, 14 * len(wrapped) + 6), (255, 255, 255))
        ImageDraw.Draw(footer).multiline_text((4, 3), '\n'.join(wrapped), fill=(20, 20, 20),
                                              spacing=3, font=font(11))
        joined = Image.new('RGB', (canvas.width, canvas.height + footer.height))
        joined.paste(canvas, (0, 0))
        joined.paste(footer, (0, canvas.height))
        canvas = joined
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)


def browse(data_file: str | Path, config: str, out: str | Path, split: str = 'train',
           num: int = 8) -> list[Path]:
    """Draw the first ``num`` samples of each task of ``data_file`` after ``config``'s
    ``split`` pipeline into ``out/<task>/``; returns the files written."""
    from mmengine.registry import init_default_scope

    from up2core.config import load_config
    from up2core.data.dataset_file import apply_data_file, load_data_file
    from up2core.registry import DATASETS, TASKS

    cfg = load_config(config)
    apply_data_file(cfg, load_data_file(data_file), need=(split,), quiet=True)
    init_default_scope('up2core')
    loaders = cfg.get(f'{split}_dataloader') or {}
    written = []
    for task, loader in loaders.items():
        dataset = DATASETS.build(loader['dataset'])
        names = TASKS.build(dict(cfg.model.tasks[task])).data_names().get('classes') \
            or list(dataset.metainfo.get('classes') or [])
        for index in range(min(num, len(dataset))):
            packed = dataset[index]
            image = packed['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]  # CHW BGR -> RGB
            target = Path(out) / task / f'{index:03d}.png'
            draw_sample(np.ascontiguousarray(image), packed['data_samples'], names, target)
            target.with_suffix('.json').write_text(json.dumps(
                drawn_targets(image.shape[:2], packed['data_samples'], names)) + '\n')
            written.append(target)
    return written


def drawn_targets(shape: tuple[int, int], sample, names: list[str]) -> dict:
    """What :func:`draw_sample` draws of ``sample``, in pixels of the training input: the
    input's ``[h, w]``, and per instance its name, box and its mask's extent (``[x0, y0, x1,
    y1]``, None without mask pixels), written beside each picture of ``up2 data browse`` (so
    that a box off its mask shows in numbers too)."""
    out: dict = {'image': [int(shape[0]), int(shape[1])], 'instances': []}
    boxes, labels, masks = _instances(sample)
    for k, (box, label) in enumerate(zip(boxes, labels)):
        extent = None
        if masks is not None:
            ys, xs = np.nonzero(masks[k])
            if len(xs):
                extent = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        out['instances'].append({
            'name': _name(names, label),
            'box': [round(float(v), 2) for v in box], 'mask_extent': extent})
    return out
