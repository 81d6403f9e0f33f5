"""The detection task on a tiny random model: losses, predictions, open-vocabulary names."""

import pytest
import torch

from tests.plugins.conftest import region_batch

NAMES = ['red circle', 'blue square', 'green star']


@pytest.fixture(scope='module')
def model():
    from tests.plugins.conftest import tiny_region_model

    return tiny_region_model(dict(detection=dict(type='detection', class_names=NAMES)))


def test_loss_trains_proposals_and_names(model):
    model.train()
    inputs, samples = region_batch('detection', with_masks=False)
    losses = model(inputs, samples, mode='loss')
    assert 'loss_region_cls' in losses and 'loss_rpn_giou' in losses
    assert not any('mask' in k or 'dice' in k for k in losses)  # boxes only
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    rpn = model.image_encoder.proposal_generator
    assert rpn.reg_branches[0][-1].weight.grad.abs().sum() > 0  # (zero-initialised layer)
    assert rpn.box_proj.weight.grad.abs().sum() > 0  # region tokens reach the loss
    assert model.decoder.input_proj['region'][0].weight.grad.abs().sum() > 0
    model.zero_grad()


def test_region_tokens_are_their_own_segment(model):
    model.eval()
    with torch.no_grad():
        image = model.encode_image(torch.randn(1, 3, 64, 64))
    segments = model.image_segments(image)
    assert [s.modality for s in segments] == ['image', 'region']
    assert segments[1].tokens.shape[1] == 5 and segments[1].attribute[2] == 1.0


def test_predictions_are_in_original_pixels_and_rank_names(model):
    model.eval()
    inputs, samples = region_batch('detection', with_masks=False)
    with torch.no_grad():
        out = model(inputs, samples, mode='predict')
    pred = out[0].pred_instances
    assert len(pred.bboxes) == min(100, 5 * len(NAMES))
    assert (pred.bboxes >= 0).all() and (pred.bboxes <= 128).all()  # ori_shape is 128 x 128
    assert (pred.scores[:-1] >= pred.scores[1:]).all() and (pred.scores <= 1).all()
    assert set(pred.labels.tolist()) <= set(range(len(NAMES)))


def test_the_category_list_changes_at_inference_without_retraining(model):
    model.eval()
    task = model.tasks['detection']
    inputs, samples = region_batch('detection', with_masks=False)
    new_names = ['yellow hexagon', 'purple cross', 'white diamond', 'orange triangle']
    with torch.no_grad():
        (sample,) = task.infer(model, inputs[:1], samples[:1], classes=new_names)
        result = task.to_result(sample)
    assert set(result['classes']) <= set(new_names) and len(result['classes']) == 20
    assert result['labels'] == [new_names.index(c) for c in result['classes']]
    # the names' features are computed for the list asked for, and cached per list
    cache = task.__dict__['_candidate_cache']  # the names of the call are cached, by themselves
    assert tuple(new_names) in cache and tuple(NAMES) not in cache
    model.train()
    assert not task.__dict__['_candidate_cache']  # training drops the cache: weights change


def test_a_batch_without_objects_still_has_a_loss(model):
    from mmdet.structures.bbox import HorizontalBoxes

    model.train()
    inputs, samples = region_batch('detection', with_masks=False)
    for sample in samples:
        sample.gt_instances = sample.gt_instances[:0]
        sample.gt_instances.bboxes = HorizontalBoxes(torch.zeros(0, 4))
    losses = model(inputs, samples, mode='loss')
    assert float(losses['loss_region_cls']) == 0.0
    assert torch.isfinite(losses['loss_rpn_objectness'])
