"""``up2 data check``: every fault it names has a fixture here, with its message and exit status;
``up2 train --data`` refuses faulty data, ``--skip-bad-records`` trains on cleaned copies, and
the user's files are never changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_up2
from up2core.cli import main
from up2core.config import load_config
from up2core.data.check import SEVERITY, check_data, skip_bad_records
from up2core.data.dataset_file import apply_data_file, load_data_file

W, H = 64, 48  # not square: a swapped width and height shows


def _png(path: Path, seed: int = 0, size=(W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def make_base(root: Path) -> Path:
    """A clean dataset of every layout: 3 train and 2 val images, categories 7 and 9."""
    for split, names in (('train', 'abc'), ('val', 'de')):
        images, anns = [], []
        for k, name in enumerate(names):
            _png(root / 'images' / split / f'{name}.png', seed=ord(name))
            images.append({'id': 10 + k, 'file_name': f'{name}.png', 'width': W, 'height': H})
            anns.append({'id': 100 + k, 'image_id': 10 + k, 'category_id': 7 if k % 2 else 9,
                         'bbox': [4, 4, 20, 16], 'area': 320, 'iscrowd': 0,
                         'segmentation': [[4, 4, 24, 4, 24, 20, 4, 20]]})
        (root / 'annotations').mkdir(parents=True, exist_ok=True)
        (root / 'annotations' / f'{split}.json').write_text(json.dumps(
            {'images': images, 'annotations': anns,
             'categories': [{'id': 7, 'name': 'widget'}, {'id': 9, 'name': 'gadget'}]}))
        with (root / f'captions_{split}.jsonl').open('w') as handle:
            for name in names:
                handle.write(json.dumps({'image': f'images/{split}/{name}.png',
                                         'caption': f'a picture called {name}.'}) + '\n')
        for name in names:
            _png(root / 'cls' / split / ('widget' if name in 'ace' else 'gadget') /
                 f'{name}.png', seed=ord(name) + 1)
    (root / 'data.yaml').write_text(
        'detection:\n'
        '  train: {ann: annotations/train.json, images: images/train}\n'
        '  val:   {ann: annotations/val.json,   images: images/val}\n'
        'classification: {train: cls/train, val: cls/val}\n'
        'captioning: {train: {ann: captions_train.jsonl}, val: {ann: captions_val.jsonl}}\n')
    return root / 'data.yaml'


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _exif_rotated(root: Path) -> None:
    path = root / 'images' / 'train' / 'a.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: shown as H x W
    Image.new('RGB', (W, H), (200, 10, 10)).save(path, exif=exif.tobytes())
    _edit_json(root / 'annotations' / 'train.json',
               lambda d: d['images'][0].update(file_name='a.jpg'))


def _truncate(root: Path) -> None:
    path = root / 'images' / 'train' / 'b.png'
    path.write_bytes(path.read_bytes()[:-40])


FAULTS = {
    'missing image': lambda r: (r / 'images' / 'train' / 'a.png').unlink(),
    'unreadable image': lambda r: (r / 'images' / 'train' / 'a.png').write_text('not an image'),
    'truncated image': _truncate,
    'EXIF orientation swaps the json width and height': _exif_rotated,
    'image size differs from the json': lambda r: _png(r / 'images' / 'val' / 'd.png',
                                                       size=(50, 50)),
    'box outside its image': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][1].update(bbox=[70, 40, 30, 30])),
    'zero-size box': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][0].update(bbox=[4, 4, 0, 9])),
    'polygon of fewer than 3 points': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][0].update(segmentation=[[1, 1, 5, 5]])),
    'duplicate image id': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['images'][1].update(id=10)),
    'duplicate annotation id': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['annotations'][1].update(id=100)),
    'annotation of an unknown image': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['annotations'][2].update(image_id=77)),
    'annotation of an unknown category': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['annotations'][2].update(category_id=8)),
    'malformed record': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][2].update(bbox=[1, 2, 'x', 4])),
    # what real exports carry: repaired or completed, said, trained on
    'box past the image edge (clipped)': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][0].update(bbox=[-1.0, 4, 21, 16])),
    'polygon past the image edge (clipped)': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][0].update(segmentation=[[-2, 4, 24, 4, 24, 20, 4, 20]])),
    'image listed twice': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['images'].append(dict(d['images'][0]))),
    'box computed from its mask': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['annotations'][2].pop('bbox')),
    'area computed': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['annotations'][2].pop('area')),
    'annotation without a mask': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['annotations'][1].update(segmentation=[])),
    'crowd region': lambda r: _edit_json(
        r / 'annotations' / 'train.json', lambda d: d['annotations'][1].update(iscrowd=1)),
    'empty caption': lambda r: (r / 'captions_train.jsonl').open('a').write(
        '{"image": "images/train/a.png", "caption": "  "}\n'),
    'category without training examples': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['categories'].append({'id': 11, 'name': 'sprocket'})),
    'caption longer than the text encoder takes': lambda r: (r / 'captions_train.jsonl').open(
        'a').write(json.dumps({'image': 'images/train/a.png',
                               'caption': 'a very long caption ' * 20}) + '\n'),
    'class name longer than the text encoder takes': lambda r: _edit_json(
        r / 'annotations' / 'train.json',
        lambda d: d['categories'].append({'id': 12, 'name': 'part ' * 60})),
    'empty class folder': lambda r: (r / 'cls' / 'train' / 'gizmo').mkdir(),
    'unreadable file': lambda r: (r / 'annotations' / 'val.json').write_text('{"images": [1,'),
}


#: what the config that will train caps silently (the check is told its capacity)
CAPACITY = {
    'more objects than the model proposes': (dict(max_objects=1), 2),
    'image far larger than the training size': (dict(image_size=10), 0),
    'image smaller than the training size': (dict(image_size=400), 0),
}


@pytest.mark.parametrize('kind', sorted(CAPACITY))
def test_what_the_config_caps_is_said(tmp_path, kind):
    data = make_base(tmp_path)
    capacity, extra = CAPACITY[kind]
    if extra:  # more objects in one image than the model proposes
        _edit_json(tmp_path / 'annotations' / 'train.json', lambda d: d['annotations'].append(
            dict(d['annotations'][0], id=555, bbox=[30, 20, 10, 10])))
    report = check_data(load_data_file(data), capacity=capacity)
    found = [f for f in report.findings if f.kind == kind]
    assert found and 'image id' in found[0].record, report.lines()
    assert not report.errors


def test_every_kind_the_check_knows_has_a_fixture():
    assert set(FAULTS) | {'same image in train and val', 'image without annotations'} | \
        set(CAPACITY) == set(SEVERITY)


@pytest.mark.parametrize('kind', sorted(FAULTS))
def test_every_fault_is_named_with_its_record_and_sets_the_exit_status(tmp_path, capsys, kind):
    data = make_base(tmp_path)
    FAULTS[kind](tmp_path)
    report_file = tmp_path / 'report.json'
    status = main(['data', 'check', str(data), '--json', str(report_file)])
    out = capsys.readouterr().out
    line = next((line for line in out.splitlines() if f'x {kind}:' in line), None)
    assert line is not None, out
    severity = SEVERITY[kind]
    assert line.startswith(f'{severity}: '), line
    assert status == (2 if severity == 'error' else 0), out
    assert str(tmp_path) in line  # the file, and the record
    report = json.loads(report_file.read_text())
    found = [f for f in report['findings'] if f['kind'] == kind]
    assert found and found[0]['record'], found


def test_a_clean_dataset_passes(tmp_path, capsys):
    data = make_base(tmp_path)
    assert main(['data', 'check', str(data)]) == 0
    out = capsys.readouterr().out
    assert '0 errors, 0 warnings' in out
    assert 'records and 10 images checked' in out


def test_the_same_image_in_train_and_val_is_found_by_content(tmp_path, capsys):
    data = make_base(tmp_path)
    shutil.copy(tmp_path / 'images' / 'train' / 'a.png', tmp_path / 'images' / 'val' / 'd.png')
    assert main(['data', 'check', str(data)]) == 0
    assert 'same image' not in capsys.readouterr().out  # opt-in: it reads whole files
    assert main(['data', 'check', str(data), '--hash']) == 0
    out = capsys.readouterr().out
    assert 'warning: 1 x same image in train and val' in out and 'a.png' in out


def test_many_faults_of_a_kind_are_one_line_with_the_first_examples(tmp_path, capsys):
    data = make_base(tmp_path)
    _edit_json(tmp_path / 'annotations' / 'train.json',
               lambda d: [a.update(bbox=[0, 0, 0, 0]) for a in d['annotations']])
    assert main(['data', 'check', str(data)]) == 0  # left out, as mmdet does: not an error
    lines = [line for line in capsys.readouterr().out.splitlines() if 'zero-size' in line]
    assert len(lines) == 1
    assert lines[0].startswith('warning: 3 x zero-size box: ') and 'and 0 more' not in lines[0]
    assert lines[0].endswith('-> left out of training and evaluation (as mmdet does)')


def _digests(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_train_refuses_faulty_data_and_skips_it_only_when_asked(tmp_path):
    data = make_base(tmp_path / 'mine')
    FAULTS['box outside its image'](tmp_path / 'mine')
    FAULTS['unreadable image'](tmp_path / 'mine')
    before = _digests(tmp_path / 'mine')
    result = run_up2('train', 'up2_tiny_shapes_generalist', '--data', str(data),
                     '--work-dir', str(tmp_path / 'work'), cwd=tmp_path)
    err = result.stderr
    assert result.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith('up2: error: ')]
    assert len(errors) == 1 and 'Traceback' not in err, err
    err = errors[0]
    assert '1 x box outside its image' in err and '--skip-bad-records' in err
    assert _digests(tmp_path / 'mine') == before

    # what --skip-bad-records does before training starts: copies without the faulty records
    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, load_data_file(data), need=('train',))
    report = check_data(load_data_file(data))
    dropped = skip_bad_records(cfg, report, tmp_path / 'work' / 'data')
    assert dropped == '1 images, 1 annotations, 1 caption rows'
    cleaned = json.loads(Path(cfg.train_dataloader.detection.dataset.ann_file).read_text())
    assert str(tmp_path / 'work' / 'data') in cfg.train_dataloader.detection.dataset.ann_file
    assert [i['file_name'] for i in cleaned['images']] == ['b.png', 'c.png']
    assert len(cleaned['annotations']) == 1  # a.png's went with it, b.png's box was outside
    assert _digests(tmp_path / 'mine') == before  # the user's files are never written


def test_an_unreadable_class_image_is_left_out_of_the_folder_dataset(tmp_path):
    from mmengine.registry import init_default_scope

    from up2core.registry import DATASETS

    data = make_base(tmp_path)
    (tmp_path / 'cls' / 'train' / 'widget' / 'a.png').write_text('not an image')
    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, load_data_file(data), need=('train',))
    report = check_data(load_data_file(data))
    assert skip_bad_records(cfg, report, tmp_path / 'clean') == '1 images'
    init_default_scope('up2core')
    dataset = DATASETS.build(cfg.train_dataloader.classification.dataset)
    assert len(dataset) == 2 and all('a.png' not in d['img_path'] for d in dataset.data_list)


@pytest.mark.slow
def test_train_with_skip_bad_records_trains_on_the_clean_records(tmp_path):
    data = make_base(tmp_path / 'mine')
    FAULTS['box outside its image'](tmp_path / 'mine')
    before = _digests(tmp_path / 'mine')
    work = tmp_path / 'work'
    options = [f'{stage}_dataloader.{task}.{key}'
               for stage in ('train', 'val') for task in ('detection', 'classification',
                                                          'captioning')
               for key in ('batch_size=2', 'num_workers=0', 'persistent_workers=False')]
    result = run_up2('train', '--data', str(data), '--skip-bad-records', '--work-dir', str(work),
                     '--cfg-options', 'max_iters=1', *options, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'up2: --skip-bad-records: training without 1 annotations' in result.stderr
    assert json.loads((work / 'metrics.json').read_text())['iter'] == 1
    cleaned = sorted((work / 'data').iterdir())
    assert [p.name for p in cleaned] == ['00_train.json']
    assert _digests(tmp_path / 'mine') == before


def test_the_check_and_the_image_folder_reader_read_the_same_files(tmp_path):
    """One rule for both (up2core/data/image_folder.py): images in sub-folders are read (as
    torchvision's ImageFolder reads them), TIFFs too, hidden folders and files never (a notebook's
    .ipynb_checkpoints is not a class, macOS's ._ files are not images)."""
    from up2_classification.dataset import ImageFolderDataset

    from up2core.data.check import CheckReport, check_image_folder

    root = tmp_path / 'train'
    _png(root / 'widget' / 'a.png')
    _png(root / 'widget' / 'batch2' / 'b.png', seed=1)
    (root / 'gadget').mkdir(parents=True)
    Image.new('RGB', (W, H), (10, 200, 10)).save(root / 'gadget' / 'c.tif')
    _png(root / '.ipynb_checkpoints' / 'd.png', seed=2)
    _png(root / 'gadget' / '.hidden' / 'e.png', seed=3)
    (root / 'gadget' / '._c.tif').write_bytes(b'not an image: macOS metadata')
    report = CheckReport()
    checked = sorted(str(p) for p in check_image_folder(report, root)['files'])
    dataset = ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img='train'))
    read = sorted(dataset.get_data_info(i)['img_path'] for i in range(len(dataset)))
    assert read == checked == sorted(str(root / p) for p in ('widget/a.png',
                                                             'widget/batch2/b.png',
                                                             'gadget/c.tif'))
    assert dataset.metainfo['classes'] == ('gadget', 'widget') and not report.errors


def test_a_jpeg_with_data_after_its_end_is_whole_and_a_cut_one_is_not(tmp_path):
    """Phones' motion photos append a video after the JPEG's end marker: whole, as the readers
    decode it; a JPEG cut short is truncated."""
    from up2core.data.check import read_header

    path = tmp_path / 'photo.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
        path, quality=90)
    data = path.read_bytes()
    (tmp_path / 'motion.jpg').write_bytes(data + b'\x00\x00\x00\x18ftypmp42' + bytes(2000))
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) // 2])
    assert read_header(tmp_path / 'motion.jpg') == ('ok', (W, H, 1))
    assert read_header(tmp_path / 'cut.jpg')[0] == 'truncated image'
