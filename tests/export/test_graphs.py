"""Exported task graphs give the eager model's outputs (parity), run in ONNX Runtime and from a
``.pt2``, and ``up2 export`` refuses what it cannot export with one line."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from tests.conftest import run_up2
from up2core.apis.inference import init_model, iter_inference
from up2core.export import ExportedGraph, export_task, prepare_image
from up2core.regions import masks_to_original

pytestmark = pytest.mark.slow

TEXTS = ['a large red circle.', 'two small blue squares.', 'one green star in the centre.']


@pytest.fixture(scope='module')
def model(tiny_generalist):
    config, checkpoint, _ = tiny_generalist
    return init_model(str(config), str(checkpoint))


def _images(tiny_generalist, count=2):
    return sorted(tiny_generalist[2].glob('*.png'))[:count]


def _eager(model, task, image, **kwargs):
    ((_, _, samples),) = list(iter_inference(model, [str(image)], [task], 1, **kwargs))
    return samples[task]


def _batch(model, task, images):
    arrays, metas = zip(*(prepare_image(model, task, str(i), (128, 128)) for i in images))
    return np.concatenate(arrays), metas


def test_a_smaller_image_is_padded_with_the_mean_as_training_pads(model, tiny_generalist):
    """The graph's input pads with the preprocessor's mean (zero once normalised), as the data
    preprocessor pads a batch; not with black."""
    image = np.zeros((40, 60, 3), np.uint8)
    array, meta = prepare_image(model, 'detection', image, (128, 128))
    height, width = meta['img_shape'][:2]
    assert (height, width) != (128, 128)
    mean = model.data_preprocessor.mean.flatten().tolist()
    assert array[0, :, height:, :].reshape(3, -1).mean(1).tolist() == pytest.approx(mean)
    assert array[0, :, :height, :width].max() == 0


def _same_regions(graph: dict, index: int, pred, top: int = 20) -> None:
    """Each of the eager model's ``top`` regions is in the graph's output with the same label,
    score and box (matched by value: regions of equal score may come in either order)."""
    boxes, scores, labels = graph['boxes'][index], graph['scores'][index], graph['labels'][index]
    for box, score, label in zip(pred.bboxes[:top].numpy(), pred.scores[:top].numpy(),
                                 pred.labels[:top].numpy()):
        same = (labels == label) & (np.abs(scores - score) < 1e-4) & \
            (np.abs(boxes - box).max(axis=1) < 1e-2)
        assert same.any(), (box, score, label)


def test_cli_exports_classification_to_onnx_that_onnxruntime_runs_like_eager(
        tiny_generalist, model, tmp_path):
    config, checkpoint, _ = tiny_generalist
    out = tmp_path / 'classification.onnx'
    result = run_up2('export', str(config), str(checkpoint), '--task', 'classification',
                     '--format', 'onnx', '--out', str(out), '--max-batch', '4', timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert 'outputs scores' in result.stdout and f'{out}.json' in result.stdout
    info = json.loads((tmp_path / 'classification.onnx.json').read_text())
    assert info['task'] == 'classification' and info['outputs'] == ['scores']
    assert info['input']['shape'] == ['batch', 3, 128, 128]
    assert info['metadata']['classes'] == model.tasks['classification'].class_names
    graph = ExportedGraph(out)
    images = _images(tiny_generalist)
    scores = graph(_batch(model, 'classification', images)[0])['scores']  # a batch of 2
    assert scores.shape == (2, len(info['metadata']['classes']))
    for row, image in zip(scores, images):
        sample = _eager(model, 'classification', image)
        np.testing.assert_allclose(row[sample.pred_topk_labels.numpy()],
                                   sample.pred_topk_scores.numpy(), atol=1e-5)
        assert int(row.argmax()) == sample.pred_label
    # the refusal is one line: an existing file is not replaced without --overwrite
    again = run_up2('export', str(config), str(checkpoint), '--task', 'classification',
                    '--out', str(out), timeout=120)
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f'up2: error: {out} exists: add --overwrite to replace it']


def test_detection_onnx_matches_eager_boxes_scores_and_labels(tiny_generalist, model, tmp_path):
    classes = ['red circle', 'blue square', 'green star', 'white cross']
    info = export_task(model, 'detection', tmp_path / 'detection.onnx', format='onnx',
                       classes=classes)
    assert info['outputs'] == ['boxes', 'scores', 'labels']
    assert info['metadata']['classes'] == classes
    graph = ExportedGraph(tmp_path / 'detection.onnx')
    images = _images(tiny_generalist)
    outputs = graph(_batch(model, 'detection', images)[0])
    assert outputs['boxes'].shape == (2, 100, 4) and outputs['labels'].dtype == np.int64
    for index, image in enumerate(images):
        _same_regions(outputs, index, _eager(model, 'detection', image,
                                             classes=classes).pred_instances)


def test_segmentation_program_gives_the_eager_masks(tiny_generalist, model, tmp_path):
    info = export_task(model, 'segmentation', tmp_path / 'segmentation.pt2',
                       format='exported-program', max_batch=1)
    assert info['outputs'] == ['boxes', 'scores', 'labels', 'mask_logits']
    graph = ExportedGraph(tmp_path / 'segmentation.pt2')
    (image,) = _images(tiny_generalist, 1)
    pixels, (meta,) = _batch(model, 'segmentation', [image])
    outputs = graph(pixels)
    pred = _eager(model, 'segmentation', image).pred_instances
    _same_regions(outputs, 0, pred)
    masks = masks_to_original(torch.from_numpy(outputs['mask_logits'][0][:20]), (128, 128), meta)
    agree = (masks == pred.masks[:20]).float().mean()
    assert agree > 0.999, agree


def test_retrieval_bakes_the_texts_in_and_ranks_them_like_eager(tiny_generalist, model,
                                                               tmp_path):
    info = export_task(model, 'retrieval', tmp_path / 'retrieval.pt2',
                       format='exported-program', texts=TEXTS)
    assert info['metadata']['texts'] == TEXTS
    graph = ExportedGraph(tmp_path / 'retrieval.pt2')
    images = _images(tiny_generalist)
    scores = graph(_batch(model, 'retrieval', images)[0])['scores']
    for row, image in zip(scores, images):
        sample = _eager(model, 'retrieval', image, texts=TEXTS)
        np.testing.assert_allclose(row, sample.pred_text_scores.numpy(), atol=1e-5)


def test_what_cannot_be_exported_is_one_error_line(tiny_generalist, tmp_path):
    config, checkpoint, _ = tiny_generalist
    cases = {
        ('--task', 'retrieval'): 'up2: error: exporting retrieval needs the candidate texts '
                                 'to rank: --texts ...',
        ('--task', 'counting'): 'up2: error: --task counting: the model has no such task; it '
                                'has classification, retrieval, detection, segmentation, '
                                'captioning',
        ('--task', 'detection', '--format', 'tflite'): 'up2: error: --format tflite: use one '
                                                       'of onnx, exported-program',
        ('--task', 'detection', '--image-size', '100', '0'): None,
    }
    for args, expected in cases.items():
        result = run_up2('export', str(config), str(checkpoint), *args, '--out',
                         str(tmp_path / 'x.onnx'), timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith('up2: error: '), (args, lines)
        if expected is not None:
            assert lines[0] == expected


def test_a_task_without_export_head_is_refused_by_name(model, tmp_path, monkeypatch, capsys):
    from up2core import cli
    from up2core.task import Task

    class Bare(Task):  # a plugin's task written before API 1.3
        def loss(self, model, inputs, data_samples):
            return {}

        def predict(self, model, inputs, data_samples):
            return data_samples

    bare = Bare()
    bare.name = 'bare'
    model.tasks['bare'] = bare
    try:
        with pytest.raises(NotImplementedError, match="task 'bare' \\(Bare\\) cannot be "
                                                      'exported: it defines no export_head'):
            export_task(model, 'bare', tmp_path / 'bare.onnx')
        # (the module: up2core.apis also exports a function named inference)
        monkeypatch.setattr(importlib.import_module('up2core.apis.inference'), 'init_model',
                            lambda *args, **kwargs: model)
        status = cli.main(['export', 'config.py', 'model.pth', '--task', 'bare', '--out',
                           str(tmp_path / 'bare.onnx')])
    finally:
        del model.tasks['bare']
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "up2: error: --task bare: task 'bare' (Bare) cannot be exported: it defines no "
        'export_head']
