"""Mixed sizes change nothing: an image's predictions are the same alone and inside a padded batch
of images of other sizes (each image is encoded at its own size; the Transformer parts see a
padding mask), and what ``up2 test`` scores (padded batches, ``test_step``) is what ``up2 infer``
answers (one image, no padding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

#: how far an image's answers may move between alone and batched (float summation order only):
#: box corners in pixels of the original image, scores, mask IoU
BOX_PX, SCORE, MASK_IOU = 0.5, 0.01, 0.97
SIZES = [(96, 128), (150, 100), (128, 128), (60, 200)]  # (h, w) of the files


@pytest.fixture(scope='module')
def model():
    from up2core.apis import init_model

    torch.manual_seed(0)
    return init_model('up2_tiny_shapes_generalist')  # untrained heads: the geometry is the point


@pytest.fixture(scope='module')
def images():
    rng = np.random.default_rng(3)
    out = []
    for h, w in SIZES:
        img = np.full((h, w, 3), 110, np.uint8)
        for _ in range(3):  # a few bright blocks, so proposals have something to find
            y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
            img[y:y + 20, x:x + 20] = rng.integers(0, 255, 3)
        out.append(img)
    return out


def _predict(model, images, task):
    from up2core.apis.inference import _prepare

    prepared = [_prepare(model, [task], f'img{i}', img)[task] for i, img in enumerate(images)]
    with torch.no_grad():
        return model.test_step(pseudo_collate(prepared))


def _matches(a, b, masks: bool = False) -> None:
    """Every answer of ``a`` has one in ``b`` within the tolerances (an untrained model scores
    many proposals alike, so ties may come out in another order: matched, not zipped)."""
    assert len(a) > 0
    for k in range(len(a)):
        close = ((b.bboxes - a.bboxes[k]).abs().max(1).values <= BOX_PX) & \
            ((b.scores - a.scores[k]).abs() <= SCORE)
        assert close.any(), (k, a.bboxes[k], a.scores[k])
        if masks:
            mask = a.masks[k]
            ious = [float((mask & m).sum()) / max(float((mask | m).sum()), 1.0)
                    for m in b.masks[close]]
            assert max(ious) >= MASK_IOU, ious


def _same(alone, batched, masks: bool) -> None:
    a, b = alone.pred_instances, batched.pred_instances
    assert len(a) == len(b)
    top = a.scores.argsort(descending=True)[:15]
    _matches(a[top], b, masks)
    top = b.scores.argsort(descending=True)[:15]
    _matches(b[top], a, masks)


@pytest.mark.parametrize('task', ['detection', 'segmentation'])
def test_an_image_answers_the_same_alone_and_in_a_batch_of_other_sizes(model, images, task):
    batched = _predict(model, images, task)
    for index, image in enumerate(images):
        (alone,) = _predict(model, [image], task)
        assert tuple(batched[index].ori_shape[:2]) == SIZES[index]
        _same(alone, batched[index], masks=task == 'segmentation')


def test_the_whole_batch_is_padded_and_the_encoder_is_told(model, images):
    """The batch above really mixes sizes (else the test proves nothing), and the encoder gets
    each image's size: tokens of the padding are marked invalid."""
    from up2core.apis.inference import _prepare

    prepared = [_prepare(model, ['detection'], f'img{i}', img)['detection']
                for i, img in enumerate(images)]
    data = model.data_preprocessor(pseudo_collate(prepared), False)
    shapes = {tuple(s.img_shape[:2]) for s in data['data_samples']}
    assert len(shapes) > 1 and max(shapes) != min(shapes)
    with torch.no_grad(), model._batch_image_sizes(data['inputs'], data['data_samples']):
        tokens = model.encode_image(data['inputs'])
    assert tokens.image_sizes is not None
    assert tokens.image_sizes.tolist() == [list(s.img_shape[:2]) for s in data['data_samples']]
    counts = tokens.valid[:, :tokens.num_global].sum(1).tolist()
    assert len(set(counts)) > 1  # smaller images: fewer valid global tokens


def test_up2_test_and_up2_infer_answer_the_same(model, images):
    """The evaluation path (padded batches through ``test_step``) and the inference API (one
    image, no padding) give an image the same boxes and scores."""
    from mmengine.structures import InstanceData

    from up2core.apis import inference

    batched = _predict(model, images, 'detection')
    for index, image in enumerate(images):
        result = inference(model, image, task='detection')
        answered = InstanceData(bboxes=torch.tensor(result['boxes'], dtype=torch.float32),
                                scores=torch.tensor(result['scores'], dtype=torch.float32))
        top = answered.scores.argsort(descending=True)[:10]
        _matches(answered[top], batched[index].pred_instances)
