"""All-task inference: one encoding per image for every task, the same answers as each task
alone, batches of images of any size, and unreadable images that do not end the run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import ROOT

CONFIG = ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_generalist_e2e.py'
TEXTS = ['a large red circle', 'two small blue squares', 'one green star in the centre']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A folder holding the fixture config's small Shapes data; the tests run inside it."""
    from up2core.data.prepare import prepare_data

    tmp = tmp_path_factory.mktemp('infer')
    old = Path.cwd()
    os.chdir(tmp)
    prepare_data('data/shapes_generalist_e2e',
                 dict(type='shapes', num_train=32, num_val=8, image_size=128, seed=0))
    yield tmp
    os.chdir(old)


@pytest.fixture(scope='module')
def model(workdir):
    from up2core.apis import init_model

    torch.manual_seed(0)
    return init_model(str(CONFIG))


def _val_image(workdir, index=0) -> str:
    return str(workdir / 'data' / 'shapes_generalist_e2e' / 'images' / 'val' / f'{index:06d}.png')


class _Counter:
    def __init__(self, module, method: str) -> None:
        self.calls = 0
        original = getattr(module, method)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        self.undo = lambda: delattr(module, method)
        setattr(module, method, counted)


def _close(a, b) -> None:
    """Two plain results are equal (floats within 1e-4)."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-4)
    else:
        assert a == b


def test_all_tasks_encode_the_image_once_and_candidates_once_per_model(model, workdir):
    from up2core.apis import inference

    generator = model.image_encoder.proposal_generator
    counters = {'backbone': _Counter(model.image_encoder.backbone, 'forward'),
                'proposals': _Counter(generator, 'forward'),
                'text': _Counter(model.text_encoder, 'forward'),
                'text_ids': _Counter(model.text_encoder, 'encode_ids'),
                'decoder': _Counter(model.decoder, 'forward')}
    try:
        first = inference(model, _val_image(workdir, 0), tasks='all', texts=TEXTS)
        assert set(first['results']) == set(model.tasks)
        calls = {name: c.calls for name, c in counters.items()}
        assert calls['backbone'] == 1 and calls['proposals'] == 1
        # class prompts, category names (detection and segmentation share them), the texts
        assert calls['text'] == 3
        for c in counters.values():
            c.calls = 0
        second = inference(model, _val_image(workdir, 1), tasks='all', texts=TEXTS)
        assert set(second['results']) == set(model.tasks)
        calls = {name: c.calls for name, c in counters.items()}
        # a new image: one encoding; of the text side only the texts to rank (candidates of
        # every task are cached for the loaded weights)
        assert calls['backbone'] == 1 and calls['proposals'] == 1
        assert calls['text'] == 1 and calls['text_ids'] == 0
        # one decoder pass of the image for classification, retrieval, detection and
        # segmentation, one of the texts, one of captioning's image prefix (its generation
        # continues from that pass's cache)
        assert calls['decoder'] == 3
    finally:
        for c in counters.values():
            c.undo()


def test_all_tasks_give_what_each_task_gives_alone(model, workdir):
    from up2core.apis import inference

    image = _val_image(workdir, 2)
    together = inference(model, image, tasks='all', texts=TEXTS)
    for task in model.tasks:
        alone = inference(model, image, task=task, texts=TEXTS)
        assert alone.pop('task') == task
        _close(alone, together['results'][task])


def test_without_texts_retrieval_is_left_out_and_a_named_task_needing_them_fails(model,
                                                                                 workdir):
    from up2core.apis import inference

    record = inference(model, _val_image(workdir, 0))
    assert set(record['results']) == set(model.tasks) - {'retrieval'}
    with pytest.raises(ValueError, match='retrieval inference needs texts'):
        inference(model, _val_image(workdir, 0), task='retrieval')


def test_a_folder_with_a_broken_image_and_images_of_other_sizes(model, workdir, tmp_path):
    from up2core.apis import inference

    folder = tmp_path / 'images'
    folder.mkdir()
    shutil.copy(_val_image(workdir, 0), folder / 'a.png')
    (folder / 'b_broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 200, 3), np.uint8)).save(
        folder / 'c_wide.jpg')
    shutil.copy(_val_image(workdir, 3), folder / 'd.png')
    (folder / 'notes.txt').write_text('not an image: not listed')
    records = inference(model, str(folder), tasks=['classification', 'detection'],
                        batch_size=4)
    assert [Path(r['image']).name for r in records] == ['a.png', 'b_broken.png', 'c_wide.jpg',
                                                        'd.png']
    assert 'error' in records[1] and 'b_broken.png' in records[1]['error']
    assert all(set(r['results']) == {'classification', 'detection'}
               for r in (records[0], records[2], records[3]))
    # batched with images of another size, each image gets what it gets alone
    for record in (records[0], records[2], records[3]):
        alone = inference(model, record['image'], tasks=['classification', 'detection'])
        _close(alone['results'], record['results'])
    boxes = np.array(records[2]['results']['detection']['boxes'])
    assert (boxes[:, [0, 2]] <= 200).all() and (boxes[:, [1, 3]] <= 90).all()


def test_one_picture_with_every_task(model, workdir, tmp_path):
    from up2core.apis import inference

    out = tmp_path / 'all.png'
    inference(model, _val_image(workdir, 0), tasks='all', texts=TEXTS[:2], out_file=str(out))
    picture = Image.open(out)
    # the input and the two drawing tasks side by side, the result lines below
    assert picture.width >= 3 * 320 and picture.height > 344


# Any image that decodes is answered (issue #35): sizes from 1 x 1 to extreme aspect ratios,
# every PIL mode a photo comes in, alone or batched with others, every task and all at once.
_SIDES = st.one_of(
    st.tuples(st.integers(1, 6), st.integers(1, 6)),          # a few pixels
    st.tuples(st.integers(1, 4), st.integers(300, 4000)),     # a line, wide
    st.tuples(st.integers(300, 4000), st.integers(1, 4)),     # a line, tall
    st.tuples(st.integers(7, 400), st.integers(7, 400)))      # anything ordinary
# mode -> file type that stores it (CMYK is a JPEG's mode; '1', 'P', 'I;16', 'LA' PNG's)
_MODES = {'RGB': 'png', 'L': 'png', 'RGBA': 'png', 'LA': 'png', 'P': 'png', '1': 'png',
          'I;16': 'png', 'CMYK': 'jpg'}
_TASKS = st.sampled_from(['all', 'classification', 'retrieval', 'detection', 'segmentation',
                          'captioning'])


def _write_image(folder: Path, index: int, size: tuple[int, int], mode: str) -> str:
    height, width = size
    pixels = np.random.default_rng(index).integers(0, 255, (height, width, 3), np.uint8)
    image = Image.fromarray(pixels, 'RGB')
    image = image.convert('I;16') if mode == 'I;16' else image.convert(mode)
    path = folder / f'{index:02d}_{width}x{height}_{mode.replace(";", "")}.{_MODES[mode]}'
    image.save(path)
    return str(path)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(images=st.lists(st.tuples(_SIDES, st.sampled_from(sorted(_MODES))), min_size=1,
                       max_size=4),
       task=_TASKS, batch_size=st.integers(1, 4))
def test_every_image_that_decodes_is_answered(model, workdir, tmp_path_factory, images, task,
                                              batch_size):
    from up2core.apis import inference

    folder = tmp_path_factory.mktemp('odd')
    paths = [_write_image(folder, i, size, mode) for i, (size, mode) in enumerate(images)]
    if task == 'all':
        records = inference(model, paths, tasks='all', texts=TEXTS, batch_size=batch_size)
        assert [r['image'] for r in records] == paths
        assert all(set(r.get('results', {})) == set(model.tasks) for r in records), records
        answers = [(r['image'], r['results']) for r in records]
    else:
        records = inference(model, paths, task=task, texts=TEXTS, batch_size=batch_size)
        assert all('error' not in r for r in records), records
        answers = [(p, {task: r}) for p, r in zip(paths, records)]
    for path, results in answers:
        width, height = Image.open(path).size
        for result in results.values():
            if 'boxes' in result and result['boxes']:
                boxes = np.asarray(result['boxes'])
                assert np.isfinite(boxes).all()
                assert (boxes[:, [0, 2]] >= -1e-3).all() and (boxes[:, [1, 3]] >= -1e-3).all()
                assert (boxes[:, [0, 2]] <= width + 1e-3).all()
                assert (boxes[:, [1, 3]] <= height + 1e-3).all()
            if 'scores' in result:
                assert np.isfinite(result['scores']).all()
            if 'caption' in result:
                assert isinstance(result['caption'], str)
