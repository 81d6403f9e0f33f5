"""The readers of a user's files, fuzzed: whatever the bytes of a dataset file (YAML), a COCO json,
a captions JSON Lines or CSV file, the result is data, findings or a :class:`DataError` naming
the file; never another exception (which would reach the user as a traceback), and the file
itself is never changed."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from up2core.data.captions import read_caption_file
from up2core.data.check import CheckReport, check_captions, check_coco
from up2core.data.dataset_file import load_data_file
from up2core.errors import DataError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

#: JSON values of any shape, with the keys the readers look for over-represented
KEYS = st.sampled_from(['images', 'annotations', 'categories', 'id', 'image_id', 'category_id',
                        'bbox', 'segmentation', 'file_name', 'width', 'height', 'name',
                        'caption', 'captions', 'image', 'sentences', 'raw', 'filename', 'x'])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 300),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=6)), max_leaves=30)


def _same(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before  # nothing of the user's is changed


@SETTINGS
@given(value=JSON)
def test_check_coco_reports_any_json_without_raising(tmp_path_factory, value):
    root = tmp_path_factory.mktemp('coco')
    path = root / 'instances.json'
    path.write_text(json.dumps(value))
    before = path.read_bytes()
    report = CheckReport()
    result = check_coco(report, path, root, images=True)
    assert set(result) == {'names', 'counts', 'files'}
    assert all(f.file for f in report.findings)
    _same(path, before)


@SETTINGS
@given(rows=st.lists(st.one_of(JSON, st.text(max_size=30)), max_size=6),
       suffix=st.sampled_from(['.jsonl', '.json']))
def test_caption_files_read_as_data_or_one_data_error(tmp_path_factory, rows, suffix):
    root = tmp_path_factory.mktemp('captions')
    path = root / f'captions{suffix}'
    if suffix == '.jsonl':
        path.write_text('\n'.join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    else:
        path.write_text(json.dumps(rows[0] if rows else {}))
    before = path.read_bytes()
    try:
        records = read_caption_file(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert all(isinstance(texts, list) and texts for _, _, texts in records)
    check_captions(CheckReport(), path, root, images=True)
    _same(path, before)


@SETTINGS
@given(text=st.text(max_size=200))
def test_csv_captions_read_as_data_or_one_data_error(tmp_path_factory, text):
    root = tmp_path_factory.mktemp('csv')
    path = root / 'captions.csv'
    path.write_text('image,caption\n' + text)
    before = path.read_bytes()
    try:
        read_caption_file(path)
    except DataError as exc:
        assert str(path) in str(exc)
    check_captions(CheckReport(), path, root, images=True)
    _same(path, before)


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), JSON.map(json.dumps)))
def test_dataset_files_load_or_fail_with_one_data_error(tmp_path_factory, text):
    root = tmp_path_factory.mktemp('yaml')
    (root / 'images').mkdir()
    path = root / 'data.yaml'
    path.write_text(text)
    before = path.read_bytes()
    try:
        data = load_data_file(path)
    except DataError as exc:
        assert 'data.yaml' in str(exc) or str(root) in str(exc)
    else:
        assert data.tasks
    _same(path, before)
