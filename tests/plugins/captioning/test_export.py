"""Captioning's exported step graph: the eager model's greedy captions from ONNX Runtime, and
each position's scores blind to the tokens after it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from up2_captioning.export import caption_with_graph
from up2_captioning.task import detokenize

from up2core.apis.inference import init_model, iter_inference
from up2core.export import ExportedGraph, export_task, prepare_image

pytestmark = pytest.mark.slow


def test_onnx_step_graph_gives_the_eager_greedy_captions(tiny_generalist, tmp_path):
    config, checkpoint, val = tiny_generalist
    model = init_model(str(config), str(checkpoint))
    task = model.tasks['captioning']
    info = export_task(model, 'captioning', tmp_path / 'captioning.onnx', format='onnx',
                       max_batch=4)
    length = task.max_length
    assert info['outputs'] == ['log_probs']
    assert info['extra_inputs'] == [{'name': 'tokens', 'dtype': 'int64',
                                     'shape': ['batch', length]}]
    meta = info['metadata']
    assert meta['vocab_ids'] == task.candidate_ids(model).tolist()
    assert len(meta['tokens']) == len(meta['vocab_ids'])
    graph = ExportedGraph(tmp_path / 'captioning.onnx')
    images = sorted(val.glob('*.png'))[:2]
    pixels = np.concatenate([prepare_image(model, 'captioning', str(i), (128, 128))[0]
                             for i in images])
    generated = caption_with_graph(graph, pixels)
    with torch.no_grad():
        eager = task.generate(model, _inputs(model, images), beam_size=1)
    assert generated.tokens == eager.tokens
    np.testing.assert_allclose(generated.scores, eager.scores, atol=1e-4)
    for image, tokens in zip(images, generated.tokens):  # the API's caption, from the graph
        ((_, _, samples),) = list(iter_inference(model, [str(image)], ['captioning'], 1, beam=1))
        assert samples['captioning'].pred_caption == \
            detokenize(model.text_encoder.tokenizer, tokens)
    # position t sees tokens[:, :t + 1] only: what comes after changes nothing before it
    rng = np.random.default_rng(0)
    tokens = rng.choice(meta['vocab_ids'], size=(2, length)).astype(np.int64)
    tokens[:, 0] = meta['start_id']
    changed = tokens.copy()
    changed[:, 5:] = rng.choice(meta['vocab_ids'], size=(2, length - 5))
    before = graph(pixels, tokens=tokens)['log_probs']
    after = graph(pixels, tokens=changed)['log_probs']
    np.testing.assert_allclose(after[:, :5], before[:, :5], atol=1e-5)
    assert np.abs(after[:, 5:] - before[:, 5:]).max() > 1e-3


def _inputs(model, images):
    """The eager model's input batch for ``images`` (what iter_inference builds)."""
    from mmengine.dataset import pseudo_collate

    from up2core.apis.inference import _prepare, read_image

    prepared = [_prepare(model, ['captioning'], str(i), read_image(str(i)))['captioning']
                for i in images]
    return model.data_preprocessor(pseudo_collate(prepared), False)['inputs']
