import torch
from mmengine.structures import BaseDataElement

NAMES = ['circle', 'square', 'triangle', 'star']


def _batch(labels):
    samples = [BaseDataElement(metainfo=dict(task='classification'), gt_label=label)
               for label in labels]
    return torch.randn(len(labels), 3, 64, 64), samples


def test_loss_trains_and_predict_names_classes(make_tiny_model):
    model = make_tiny_model(dict(classification=dict(type='classification', class_names=NAMES,
                                                     topk=3)))
    task = model.tasks['classification']
    assert task.prompts[0] == 'a photo of a circle.'
    torch.manual_seed(1)
    inputs, samples = _batch([0, 1, 2, 3])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(15):
        out = model(inputs, samples, mode='loss')
        assert set(out) == {'loss_cls', 'acc_cls'}
        optimizer.zero_grad()
        out['loss_cls'].backward()
        optimizer.step()
        losses.append(out['loss_cls'].item())
    assert losses[-1] < 0.5 * losses[0]  # it memorises four images
    model.eval()
    predicted = model(inputs, samples, mode='predict')
    assert [s.pred_label for s in predicted] == [0, 1, 2, 3]
    assert predicted[0].pred_topk_classes[0] == 'circle' and len(predicted[0].pred_topk_labels) == 3
    assert torch.all(predicted[0].pred_topk_scores[:-1] >= predicted[0].pred_topk_scores[1:])


def test_class_features_are_cached_in_eval_only(make_tiny_model):
    model = make_tiny_model(dict(classification=dict(type='classification', class_names=NAMES)))
    task = model.tasks['classification']
    model.eval()
    with torch.no_grad():
        first = task.class_features(model)
        assert task.class_features(model) is first
        with torch.no_grad():  # a step of the optimiser changes the weights: computed again
            next(model.parameters()).add_(0.0)
        assert task.class_features(model) is not first
    model.train()
    assert task.class_features(model) is not task.class_features(model)


def test_a_batch_names_its_task(make_tiny_model):
    import pytest

    model = make_tiny_model(dict(classification=dict(type='classification', class_names=NAMES)))
    inputs, samples = _batch([0])
    samples[0].set_metainfo(dict(task='detection'))
    with pytest.raises(KeyError, match="batch of task 'detection'"):
        model(inputs, samples, mode='loss')
