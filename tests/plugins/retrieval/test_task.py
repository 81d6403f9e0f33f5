import torch
from mmengine.structures import BaseDataElement


def _batch(texts):
    return torch.randn(len(texts), 3, 64, 64), [
        BaseDataElement(metainfo=dict(task='retrieval'), texts=t) for t in texts]


def test_symmetric_loss_trains_and_predict_gives_normalised_features(make_tiny_model):
    model = make_tiny_model(dict(retrieval=dict(type='retrieval')))
    torch.manual_seed(2)
    inputs, samples = _batch([['a red circle'], ['two blue squares'], ['a green star'],
                              ['one white cross']])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(15):
        out = model(inputs, samples, mode='loss')
        loss = out['loss_i2t'] + out['loss_t2i']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    eval_samples = [BaseDataElement(metainfo=dict(task='retrieval'), texts=['x', 'y', 'z']),
                    BaseDataElement(metainfo=dict(task='retrieval'), texts=['w'])]
    out = model(inputs[:2], eval_samples, mode='predict')
    assert out[0].text_features.shape == (3, 32) and out[1].text_features.shape == (1, 32)
    torch.testing.assert_close(out[0].image_feature.norm(), torch.tensor(1.0))


def test_infer_ranks_the_given_texts(make_tiny_model):
    model = make_tiny_model(dict(retrieval=dict(type='retrieval'))).eval()
    inputs, samples = _batch([['unused']])
    with torch.no_grad():
        (out,) = model.tasks['retrieval'].infer(model, inputs, samples,
                                                texts=['a', 'b', 'c'])
    torch.testing.assert_close(out.pred_text_scores.sum(), torch.tensor(1.0))
    assert sorted(out.pred_text_ranking.tolist()) == [0, 1, 2]
