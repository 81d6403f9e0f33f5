"""``up2 data check``: every record and every image header of a user's data, checked.

:func:`check_data` reads a dataset file's annotation files record by record and each image's
header (not its pixels: ``PIL.Image.open`` is lazy), and collects :class:`Finding` s by kind:

errors (training would fail on them, or learn from wrong labels)
    missing, unreadable or truncated images; an image whose size disagrees with its json
    record, in particular an EXIF orientation that swaps width and height (the decoder rotates
    the pixels, the boxes stay where they were drawn); the COCO records the readers refuse
    (boxes with no part in their image, duplicate ids, annotations of unknown images or
    categories, malformed records); empty captions;
warnings (worth knowing, nothing breaks)
    what the readers repair or leave out (:mod:`up2core.data.coco_rules`: boxes and polygons a
    little past an edge are clipped, zero-size boxes and short polygons left out, an image
    listed twice read once); categories with no training example; captions or class names
    longer than the text encoder takes (they are cut); empty class folders; the same image (by
    content) in train and val (``hash_images=True``: the one check that reads whole files);
notes
    images without annotations (kept as negatives), crowd regions, records completed (a box
    from its mask, an area), annotations without a mask.

:class:`CheckReport` groups them into one line per kind (count and first examples), and knows
the faulty records, so that ``up2 train --skip-bad-records`` can train without them
(:func:`skip_bad_records`, on copies: the user's files are never written).

Examples:
    >>> from up2core.data.check import check_data
    >>> from up2core.data.dataset_file import load_data_file
    >>> report = check_data(load_data_file('data.yaml'))                # doctest: +SKIP
    >>> print('\\n'.join(report.lines()))                                # doctest: +SKIP
    error: 2 boxes outside their image (annotations/train.json: annotations[4] (id 17) ...)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from up2core.data.coco_rules import CONSEQUENCES, RULES, as_id, read_instances
from up2core.data.image_folder import IMAGE_SUFFIXES, class_folders, images_of
from up2core.errors import DataError

#: kinds of finding and their severity
SEVERITY = {
    'missing image': 'error',
    'unreadable image': 'error',
    'truncated image': 'error',
    'EXIF orientation swaps the json width and height': 'error',
    'image size differs from the json': 'error',
    'empty caption': 'error',
    'unreadable file': 'error',
    # the records of COCO instances files: the readers' own rules
    **RULES,
    'category without training examples': 'warning',
    'caption longer than the text encoder takes': 'warning',
    'class name longer than the text encoder takes': 'warning',
    'empty class folder': 'warning',
    'same image in train and val': 'warning',
    'more objects than the model proposes': 'warning',
    'image far larger than the training size': 'warning',
    'image smaller than the training size': 'note',
    'image without annotations': 'note',
}
#: what to do about each kind of error (the fix named in the summary line)
FIXES = {
    'missing image': 'restore the files or remove their records',
    'unreadable image': 'replace the files or remove their records',
    'truncated image': 're-export the files (they end early) or remove their records',
    'EXIF orientation swaps the json width and height':
        'save the images with the rotation applied (PIL.ImageOps.exif_transpose) and '
        're-annotate, or strip the orientation tag',
    'image size differs from the json': "correct the records' width and height",
    'empty caption': 'fill the captions or remove the rows',
    'unreadable file': 'fix the file',
    'more objects than the model proposes':
        'only as many as the proposals can be found in such images: raise '
        'model.image_encoder.proposal_generator.num_queries (a new model) or accept it',
    'image far larger than the training size':
        'they are brought down to the training size, where small objects may vanish: raise '
        "the data file's settings.image_size",
    'image smaller than the training size': 'kept at their size (never enlarged)',
    **CONSEQUENCES,
}


@dataclass
class Finding:
    """One fault: its kind, the file, the record (``annotations[4] (id 17)``) and details."""

    kind: str
    file: str
    record: str
    detail: str = ''

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def text(self) -> str:
        return f'{self.file}: {self.record}' + (f' ({self.detail})' if self.detail else '')


@dataclass
class CheckReport:
    """What :func:`check_data` found, and how much it read."""

    findings: list[Finding] = field(default_factory=list)
    records: int = 0
    images: int = 0
    #: ``file -> {('annotation', id) | ('image', id) | ('row', n) | ('path', p)}`` to leave out
    bad: dict[str, set] = field(default_factory=lambda: defaultdict(set))

    def header(self, path: Path) -> tuple[str, Any]:
        """:func:`read_header` of ``path``, read once however many records name the image."""
        cache = self.__dict__.setdefault('_headers', {})
        if path not in cache:
            self.images += 1
            cache[path] = read_header(path)
        return cache[path]

    def add(self, kind: str, file: Any, record: str, detail: str = '',
            drop: tuple | None = None) -> None:
        self.findings.append(Finding(kind, str(file), record, detail))
        if drop is not None and SEVERITY[kind] == 'error':
            self.bad[str(file)].add(drop)

    def of(self, severity: str) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {}
        for finding in self.findings:
            if finding.severity == severity:
                grouped.setdefault(finding.kind, []).append(finding)
        return grouped

    @property
    def errors(self) -> dict[str, list[Finding]]:
        return self.of('error')

    @property
    def warnings(self) -> dict[str, list[Finding]]:
        return self.of('warning')

    def lines(self, examples: int = 3) -> list[str]:
        """One line per kind, errors first: count, first examples, the fix."""
        lines = []
        for severity in ('error', 'warning', 'note'):
            for kind, found in self.of(severity).items():
                shown = '; '.join(f.text() for f in found[:examples])
                more = f'; and {len(found) - examples} more' if len(found) > examples else ''
                fix = f' -> {FIXES[kind]}' if kind in FIXES else ''
                lines.append(f'{severity}: {len(found)} x {kind}: {shown}{more}{fix}')
        return lines

    def one_line(self) -> str:
        return ', '.join(f'{len(found)} x {kind}' for kind, found in self.errors.items())

    def as_dict(self) -> dict:
        return {'records': self.records, 'images': self.images,
                'errors': sum(len(v) for v in self.errors.values()),
                'warnings': sum(len(v) for v in self.warnings.values()),
                'findings': [dict(severity=f.severity, kind=f.kind, file=f.file,
                                  record=f.record, detail=f.detail) for f in self.findings]}


# --------------------------------------------------------------------------- images


def _truncated(path: Path, fmt: str | None) -> bool:
    """Whether a JPEG or PNG file ends before its image does.

    The file's tail is read first (the end marker is usually the last bytes).  A JPEG whose
    tail lacks it may still be whole: phones' "motion photos" and other exports append data
    after the image (a video, an index); such a file is decoded in full, as the readers will,
    and called truncated only if that fails."""
    if fmt not in ('JPEG', 'PNG'):
        return False
    with path.open('rb') as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 64))
        tail = handle.read()
    if fmt == 'PNG':
        return b'IEND' not in tail
    if b'\xff\xd9' in tail.rstrip(b'\x00\r\n ')[-16:]:
        return False
    try:
        with Image.open(path) as image:
            image.load()  # PIL refuses to decode an image that ends early
    except (OSError, ValueError, SyntaxError):
        return True
    return False


def read_header(path: Path) -> tuple[str, Any]:
    """``('ok', (width, height, orientation))`` of an image from its header, or ``(kind,
    detail)`` of what is wrong with it."""
    try:
        if not path.is_file():
            return 'missing image', ''
    except (OSError, ValueError) as exc:  # a name the file system cannot hold
        return 'unreadable image', f'invalid path: {exc}'
    try:
        with Image.open(path) as image:
            width, height = image.size
            fmt = image.format
            orientation = 1
            if fmt in ('JPEG', 'TIFF', 'WEBP', 'PNG'):
                orientation = int(image.getexif().get(0x0112, 1) or 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if 'truncated' in str(exc):
            return 'truncated image', str(exc)[:80]
        return 'unreadable image', f'{type(exc).__name__}: {str(exc)[:80]}'
    if _truncated(path, fmt):
        return 'truncated image', f'{fmt} without its end marker'
    return 'ok', (width, height, orientation)


def _check_image(report: CheckReport, file: Any, record: str, path: Path,
                 expected: tuple[int, int] | None = None, drop: tuple | None = None) -> bool:
    status, info = report.header(path)
    if status != 'ok':
        report.add(status, file, record, f'{path}' + (f': {info}' if info else ''), drop)
        return False
    width, height, orientation = info
    if expected is None:
        return True
    rotated = orientation in (5, 6, 7, 8)
    shown = (height, width) if rotated else (width, height)
    if shown != tuple(expected):
        if rotated and (width, height) == tuple(expected):
            report.add('EXIF orientation swaps the json width and height', file, record,
                       f'{path.name}: orientation {orientation} shows {shown[0]}x{shown[1]}, '
                       f'the json says {expected[0]}x{expected[1]}', drop)
        else:
            report.add('image size differs from the json', file, record,
                       f'{path.name} is {shown[0]}x{shown[1]}, the json says '
                       f'{expected[0]}x{expected[1]}', drop)
        return False
    return True


def _digest(path: Path) -> str | None:
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return None


# --------------------------------------------------------------------------- layouts


def _id(value: Any) -> bool:
    """A COCO id: an integer (strings are accepted too: some exporters write them)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _capacity(report: CheckReport, ann: Path, cleaned: dict, capacity: dict | None) -> None:
    """Warn where the data exceeds what the config can give it (silent caps on results)."""
    if not capacity:
        return
    most = capacity.get('max_objects')
    if most:
        per_image: dict = defaultdict(int)
        for item in cleaned['annotations']:
            if not item.get('iscrowd'):
                per_image[item['image_id']] += 1
        for image_id, count in per_image.items():
            if count > most:
                report.add('more objects than the model proposes', ann, f'image id {image_id}',
                           f'{count} objects, {most} proposals per image')
    side = capacity.get('image_size')
    if side:
        for image in cleaned['images']:
            longer = max(image['width'], image['height'])
            size = f"{image['width']}x{image['height']}, trained at {side} px"
            if longer > 4 * side:
                report.add('image far larger than the training size', ann,
                           f"image id {image['id']}", size + f' (x{side / longer:.2f})')
            elif longer < side // 2:
                report.add('image smaller than the training size', ann,
                           f"image id {image['id']}", size)


def check_coco(report: CheckReport, ann: Path, images_dir: Path, images: bool = True,
               split: str = 'train', capacity: dict | None = None) -> dict:
    """Check a COCO instances json and its images; returns ``{'names', 'counts', 'files'}``
    (category names, annotations per category, image paths) for the cross-split checks.

    The records are judged by :func:`~up2core.data.coco_rules.read_instances`, the rules the
    reader trains by: what the check calls clipped is trained clipped, what it refuses the
    reader refuses."""
    try:
        data = json.loads(ann.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        report.add('unreadable file', ann, 'the whole file', f'not json: {exc}')
        return {'names': {}, 'counts': {}, 'files': []}
    try:
        cleaned, rulings = read_instances(data, str(ann))
    except ValueError:
        report.add('unreadable file', ann, 'the whole file',
                   "a COCO instances file is an object with lists 'images', 'annotations' and "
                   "'categories'")
        return {'names': {}, 'counts': {}, 'files': []}
    report.records += len(data['images']) + len(data['annotations'])
    for ruling in rulings:
        report.add(ruling.kind, ann, ruling.record, ruling.detail, ruling.drop)
    _capacity(report, ann, cleaned, capacity)
    categories = {cat['id']: cat['name'] for cat in cleaned['categories']}
    index_of: dict = {}
    for index, image in enumerate(data['images']):
        if isinstance(image, dict):
            index_of.setdefault(as_id(image.get('id')), index)
    files = []
    for image in cleaned['images']:
        path = images_dir / str(image['file_name'])
        files.append(path)
        if images:
            where = f"images[{index_of.get(image['id'], '?')}] (id {image['id']})"
            _check_image(report, ann, where, path, (image['width'], image['height']),
                         ('image', image['id']))
    counts: dict = defaultdict(int)
    annotated: set = set()
    for item in cleaned['annotations']:
        annotated.add(item['image_id'])
        counts[categories[item['category_id']]] += 1
    negatives = [i['id'] for i in cleaned['images'] if i['id'] not in annotated]
    if negatives:
        report.add('image without annotations', ann,
                   f"{len(negatives)} image{'s' if len(negatives) > 1 else ''}",
                   f"e.g. id {negatives[0]}; kept as negatives"
                   + (' (filter_empty: true leaves them out of training)'
                      if split == 'train' else ''))
    return {'names': categories, 'counts': dict(counts), 'files': files}


def _caption_rows(report: CheckReport, ann: Path) -> list[tuple[str, str, str]]:
    """``(record, image, caption)`` of every caption of a COCO captions json, a Karpathy json,
    a JSON Lines or a CSV file; malformed records are reported, not raised."""
    rows: list[tuple[str, str, str]] = []
    suffix = ann.suffix.lower()
    try:
        text = ann.read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError) as exc:
        report.add('unreadable file', ann, 'the whole file', str(exc))
        return rows
    if suffix == '.jsonl':
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            report.records += 1
            try:
                row = json.loads(line)
            except ValueError as exc:
                report.add('malformed record', ann, f'line {number}', f'not json: {exc}',
                           ('row', number))
                continue
            if not isinstance(row, dict) or not isinstance(row.get('image'), str):
                report.add('malformed record', ann, f'line {number}',
                           "needs 'image' and 'caption'", ('row', number))
                continue
            texts = row.get('captions', [row.get('caption')])
            for caption in texts if isinstance(texts, list) else [texts]:
                rows.append((f'line {number}', row['image'], caption))
        return rows
    if suffix == '.csv':
        try:
            reader = csv.DictReader(text.splitlines())
            fields = [f.strip() for f in reader.fieldnames or []]
            if 'image' not in fields or 'caption' not in fields:
                report.add('unreadable file', ann, 'header',
                           f"the CSV header must name 'image' and 'caption' (it has {fields})")
                return rows
            reader.fieldnames = fields
            for number, row in enumerate(reader, start=2):
                report.records += 1
                rows.append((f'line {number}', row.get('image') or '', row.get('caption')))
        except csv.Error as exc:
            report.add('unreadable file', ann, 'the whole file', f'not CSV: {exc}')
        return rows
    try:
        data = json.loads(text)
    except ValueError as exc:
        report.add('unreadable file', ann, 'the whole file', f'not json: {exc}')
        return rows
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        report.add('unreadable file', ann, 'the whole file',
                   "expected COCO captions (images + annotations) or Karpathy (images with "
                   "sentences)")
        return rows
    if isinstance(data.get('annotations'), list):
        files = {i.get('id'): i.get('file_name') for i in data['images']
                 if isinstance(i, dict) and _id(i.get('id'))}
        for index, item in enumerate(data['annotations']):
            report.records += 1
            where = f"annotations[{index}] (id {item.get('id') if isinstance(item, dict) else '?'})"
            if not isinstance(item, dict) or not _id(item.get('image_id')) \
                    or item.get('image_id') not in files:
                report.add('annotation of an unknown image', ann, where,
                           f"image_id {item.get('image_id') if isinstance(item, dict) else '?'}",
                           ('annotation', index))
                continue
            rows.append((where, str(files[item['image_id']]), item.get('caption')))
        return rows
    for index, image in enumerate(data['images']):
        report.records += 1
        sentences = image.get('sentences') if isinstance(image, dict) else None
        if not isinstance(sentences, list) or not isinstance(image.get('filename'), str):
            report.add('malformed record', ann, f'images[{index}]',
                       "a Karpathy image needs 'filename' and a list of 'sentences'")
            continue
        for k, sentence in enumerate(sentences):
            raw = sentence.get('raw') if isinstance(sentence, dict) else None
            rows.append((f'images[{index}].sentences[{k}]',
                         str(Path(str(image.get('filepath') or '')) / image['filename']), raw))
    return rows


def check_captions(report: CheckReport, ann: Path, images_dir: Path, images: bool = True,
                   limit: int | None = None, count_tokens=None) -> dict:
    rows = _caption_rows(report, ann)
    files: dict[str, Path] = {}
    for record, image, caption in rows:
        drop = ('row', int(record.split()[1])) if record.startswith('line ') else None
        if not isinstance(caption, str) or not caption.strip():
            report.add('empty caption', ann, record, f'image {image}', drop)
            continue
        if limit is not None and count_tokens is not None and count_tokens(caption) > limit:
            report.add('caption longer than the text encoder takes', ann, record,
                       f'{count_tokens(caption)} tokens > {limit}: the end is cut')
        if not isinstance(image, str) or not image.strip():
            report.add('malformed record', ann, record, f'image must be a path, got {image!r}',
                       drop)
            continue
        path = images_dir / image
        if image not in files:
            files[image] = path
            if images:
                _check_image(report, ann, record, path, None, drop)
    return {'files': list(files.values())}


def check_image_folder(report: CheckReport, root: Path, images: bool = True) -> dict:
    files = []
    for name in class_folders(root):
        folder = root / name
        found = images_of(folder)
        report.records += len(found)
        if not found:
            report.add('empty class folder', root, name, 'no image in it')
        for path in found:
            files.append(path)
            if images:
                _check_image(report, root, str(path.relative_to(root)), path, None,
                             ('path', str(path)))
    return {'files': files}


# --------------------------------------------------------------------------- the data


def text_counter(config: str | None):
    """``(limit, count_tokens)`` of the text encoder of ``config`` (a name or path), or
    ``(None, None)`` when there is no config to ask."""
    if not config:
        return None, None
    from transformers import AutoTokenizer

    from up2core.config import load_config
    from up2core.models.text_encoder import resolve_local_path

    cfg = load_config(config)
    encoder = (cfg.get('model') or {}).get('text_encoder') or {}
    spec = encoder.get('tokenizer') or encoder.get('pretrained')
    if not spec:
        return None, None
    tokenizer = AutoTokenizer.from_pretrained(resolve_local_path(spec), local_files_only=True)
    limit = int(encoder.get('max_length', 48))

    def count(text: str) -> int:
        return len(tokenizer(text)['input_ids'])

    return limit, count


def check_data(data, images: bool = True, hash_images: bool = False,
               text_limit: int | None = None, count_tokens=None,
               capacity: dict | None = None) -> CheckReport:
    """Check every split of every task of a dataset file (see the module docstring).

    Args:
        data: a :class:`~up2core.data.dataset_file.DataFile`.
        images: read every image's header (False: the annotation files only).
        hash_images: also compare train and val images by content (reads whole files).
        text_limit, count_tokens: the text encoder's token limit and a counter
            (:func:`text_counter`); without them text lengths are not checked.
        capacity: ``{'max_objects', 'image_size'}`` of the config that will train on the data
            (:func:`~up2core.data.dataset_file.config_capacity`): images holding more objects
            than it proposes, or far larger than it trains at, are warned about.
    """
    from up2core.data.layouts import image_folder_classes

    report = CheckReport()
    done: dict[tuple, dict] = {}  # detection and segmentation often name the same files
    files_by_split: dict[str, set[Path]] = defaultdict(set)
    for task, source in data.tasks.items():
        layout = _layout_of(task, source)
        results = {}
        for split, where in source.splits.items():
            key = (layout, str(where.ann), str(where.images))
            if key not in done:
                if layout == 'coco_instances':
                    if where.ann is None or where.images is None:
                        raise DataError(f"{data.file}: '{task}.{split}' needs 'ann' and "
                                        f"'images'")
                    done[key] = check_coco(report, where.ann, where.images, images, split,
                                           capacity)
                elif layout == 'image_folder':
                    done[key] = check_image_folder(report, where.images, images)
                else:
                    done[key] = check_captions(report, where.ann, where.images or source.root,
                                               images, text_limit, count_tokens)
            results[split] = done[key]
            files_by_split[split].update(done[key]['files'])
        if layout == 'coco_instances' and 'train' in results:
            train = results['train']
            for name in train['names'].values():
                if not train['counts'].get(name):
                    key = ('category without training examples', name)
                    if key not in done:
                        done[key] = {}
                        report.add(key[0], source.split('train').ann, f"category '{name}'",
                                   'it can only be learnt zero-shot')
        names: list[str] = []
        if layout == 'coco_instances':
            names = sorted({n for r in results.values() for n in r['names'].values()})
        elif layout == 'image_folder':
            try:
                names = image_folder_classes(source)[1]
            except DataError as exc:
                report.add('unreadable file', data.file, task, str(exc))
        if text_limit is not None and count_tokens is not None:
            for name in names:
                if count_tokens(name) > text_limit and ('long name', name) not in done:
                    done[('long name', name)] = {}
                    report.add('class name longer than the text encoder takes', data.file,
                               f"{task}: '{name[:40]}'", f'{count_tokens(name)} tokens > '
                               f'{text_limit}')
    if hash_images:
        train = {_digest(p): p for p in files_by_split['train'] if p.is_file()}
        for path in sorted(files_by_split['val']):
            digest = _digest(path) if path.is_file() else None
            if digest is not None and digest in train and train[digest] != path:
                report.add('same image in train and val', path.parent, path.name,
                           f'identical to {train[digest]}')
    return report


def _layout_of(task: str, source) -> str:
    """The layout a task's entry is read with: the registered task's own, else guessed from
    the entry (a folder: image_folder; a .json with 'images' folder: coco_instances)."""
    from up2core.registry import TASKS

    cls = TASKS.get(task)
    layout = getattr(cls, 'data_layout', None) if cls is not None else None
    if layout:
        return layout
    where = next(iter(source.splits.values()))
    if where.ann is None:
        return 'image_folder'
    if where.ann.suffix.lower() in ('.jsonl', '.csv'):
        return 'captions'
    return 'coco_instances' if where.images is not None else 'captions'


# --------------------------------------------------------------------------- skipping


def skip_bad_records(cfg, report: CheckReport, out_dir: Path) -> str:
    """Point ``cfg`` at copies of the user's annotation files without the faulty records of
    ``report`` (written under ``out_dir``); returns what was left out, in words.

    COCO files lose bad annotations and bad images (with their annotations); caption files
    (JSON Lines, CSV) lose bad rows; image-folder datasets get the bad images as ``exclude``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    replaced: dict[str, str] = {}
    excluded: list[str] = []
    counts: dict[str, int] = defaultdict(int)
    for file, bad in report.bad.items():
        path = Path(file)
        if path.is_dir():  # an image folder
            paths = [p for kind, p in bad if kind == 'path']
            excluded += paths
            counts['images'] += len(paths)
            continue
        target = out_dir / f'{len(replaced):02d}_{path.name}'
        if path.suffix.lower() == '.jsonl' or path.suffix.lower() == '.csv':
            rows = {n for kind, n in bad if kind == 'row'}
            lines = path.read_text(encoding='utf-8-sig').splitlines(keepends=True)
            keep = [line for number, line in enumerate(lines, start=1) if number not in rows]
            target.write_text(''.join(keep), encoding='utf-8')
            counts['caption rows'] += len(rows)
        else:
            data = json.loads(path.read_text(encoding='utf-8'))
            images = {i for kind, i in bad if kind == 'image'}
            anns = {i for kind, i in bad if kind == 'annotation'}
            if 'categories' in data:  # instances
                data['images'] = [i for i in data['images']
                                  if not (isinstance(i, dict) and i.get('id') in images)]
            data['annotations'] = [
                a for index, a in enumerate(data['annotations'])
                if index not in anns and not (isinstance(a, dict) and a.get('image_id') in images)]
            target.write_text(json.dumps(data))
            counts['images'] += len(images)
            counts['annotations'] += len(anns)
        replaced[str(path)] = str(target)

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get('type') == 'ImageFolderDataset' and excluded:
                node = dict(node, exclude=sorted(set(node.get('exclude') or []) | set(excluded)))
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        if isinstance(node, str) and node in replaced:
            return replaced[node]
        return node

    from mmengine.config import ConfigDict

    for key, value in cfg.to_dict().items():
        if key.endswith(('_dataloader', '_evaluator')) or key == 'model':
            dict.__setitem__(cfg._cfg_dict, key, ConfigDict(swap(value)))
    return ', '.join(f'{n} {what}' for what, n in counts.items() if n) or 'nothing'
