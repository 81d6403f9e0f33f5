"""Bad training data: named at start-up where that is cheap, named or skipped-and-recorded when
an image only fails as it loads."""

import json

import pytest

from tests.conftest import ROOT, run_up2
from up2core.data.shapes import ShapesSpec, generate_shapes
from up2core.errors import DataError

E2E = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_shapes_e2e.py'
SPEC = ShapesSpec(num_train=96, num_val=24, image_size=64, seed=0)  # the fixture's spec


@pytest.fixture
def shapes(tmp_path):
    root = tmp_path / 'data' / 'shapes_e2e'
    generate_shapes(root, SPEC)
    return root


def _list_dataset(root, ann_file='classification/train.txt'):
    from up2_classification.dataset import ImageListDataset

    return ImageListDataset(ann_file=ann_file, classes='classification/classes.txt',
                            data_root=str(root))


def test_a_list_naming_a_missing_image_fails_at_start_up_with_file_and_line(shapes):
    listing = shapes / 'classification' / 'train.txt'
    lines = listing.read_text().splitlines()
    lines[4] = 'images/train/no_such.png 1'
    listing.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DataError, match=r"train.txt: 1 listed image\(s\) do not exist: line 5: "
                                        r"'.*no_such.png'"):
        _list_dataset(shapes)


def test_an_out_of_range_label_names_the_line_and_the_fix(shapes):
    listing = shapes / 'classification' / 'train.txt'
    lines = listing.read_text().splitlines()
    lines[2] = lines[2].rsplit(maxsplit=1)[0] + ' 42'
    listing.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DataError, match=r'train.txt, line 3: label 42 is outside the 8 classes'):
        _list_dataset(shapes)


def _corrupt_half_the_training_images(root):
    images = sorted((root / 'images' / 'train').glob('*.png'))
    for image in images[::2]:
        image.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)  # a header, then garbage
    return images[::2]


@pytest.mark.slow
def test_a_corrupt_training_image_stops_the_run_by_default_naming_the_file(shapes, tmp_path):
    _corrupt_half_the_training_images(shapes)
    result = run_up2('train', str(E2E), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                     'train_cfg.max_iters=2', cwd=tmp_path, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('up2: error: ') and '.png: sample ' in last
    assert 'could not be loaded' in last and 'skip_bad_samples=True' in last
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_skip_bad_samples_trains_on_and_records_every_skip(shapes, tmp_path):
    corrupt = {str(p.name) for p in _corrupt_half_the_training_images(shapes)}
    work = tmp_path / 'work'
    result = run_up2('train', str(E2E), '--work-dir', str(work), '--cfg-options',
                     'train_cfg.max_iters=2',
                     '+train_dataloader.classification.dataset.skip_bad_samples=True',
                     '+train_dataloader.retrieval.dataset.skip_bad_samples=True',
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in
               (work / 'skipped_samples.jsonl').read_text().splitlines()]
    assert records and all(r['image'].rsplit('/', 1)[-1] in corrupt for r in records)
    assert {r['dataset'] for r in records} <= {'ImageListDataset', 'CaptionDataset'}
    assert all(r['error'] for r in records)
    assert 'skipped bad sample' in result.stdout


def test_empty_captions_and_missing_images_are_named_at_start_up(tmp_path):
    from up2core.data.captions import CaptionDataset

    (tmp_path / 'a.png').write_bytes(b'')
    data = dict(images=[dict(id=1, file_name='a.png'), dict(id=2, file_name='gone.png')],
                annotations=[dict(id=7, image_id=1, caption='  '), dict(id=8, image_id=2,
                                                                         caption='x')])
    (tmp_path / 'caps.json').write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"caps.json: annotation #0 \(id 7, image_id 1\) has an "
                                        r"empty 'caption'"):
        CaptionDataset(ann_file='caps.json', data_root=str(tmp_path))
    data['annotations'][0]['caption'] = 'a caption'
    (tmp_path / 'caps.json').write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"caps.json: 1 listed image\(s\) do not exist: image id "
                                        r"2: '.*gone.png'"):
        CaptionDataset(ann_file='caps.json', data_root=str(tmp_path))
    karpathy = dict(images=[dict(filename='a.png', sentences=[dict(raw='ok'), dict(raw='')])])
    (tmp_path / 'k.json').write_text(json.dumps(karpathy))
    with pytest.raises(DataError, match=r"k.json: image #0 \(a.png\) has an empty sentence "
                                        r"\(sentences\[1\].raw\)"):
        CaptionDataset(ann_file='k.json', data_root=str(tmp_path))
