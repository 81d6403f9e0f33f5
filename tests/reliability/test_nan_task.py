"""NaN injected into ONE task's loss of the real generalist: that task's steps are skipped and
counted under its name, the other task keeps training, and no weight ever turns NaN."""

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

from up2core.engine.nonfinite import NonFiniteGuard
from up2core.errors import NonFiniteTrainingError


def _batch(task):
    samples = []
    for i in range(2):
        sample = BaseDataElement(metainfo=dict(task=task, img_shape=(64, 64)))
        if task == 'classification':
            sample.gt_label = i
        else:
            sample.texts = [f'a picture of {i} red circles']
        samples.append(sample)
    images = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=images, data_samples=samples)


def test_nan_in_one_task_is_skipped_and_named_while_the_other_trains():
    from up2core.apis import init_model

    torch.manual_seed(0)
    model = init_model('up2_tiny_shapes').train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    state = {'iter': 0, 'task': ''}
    guard = NonFiniteGuard(max_steps=2, where=lambda: (state['iter'], state['task']))
    guard.install(wrapper)
    retrieval = model.tasks['retrieval']
    real_loss = retrieval.loss
    retrieval.loss = lambda *a, **k: {name: value * float('nan')
                                      for name, value in real_loss(*a, **k).items()}
    decoder = model.decoder.state_dict()
    weights = {k: v.clone() for k, v in decoder.items() if v.is_floating_point()}

    def changed():
        now = model.decoder.state_dict()
        return any(not torch.equal(now[k], v) for k, v in weights.items())

    for i, task in enumerate(['retrieval', 'classification', 'retrieval']):
        state.update(iter=i, task=task)
        before = changed()
        model.train_step(_batch(task), optim_wrapper=wrapper)
        if task == 'retrieval':
            assert changed() == before  # the NaN step left the weights alone
        else:
            assert changed()  # classification trained
    assert guard.skipped == {'retrieval': 2}
    assert all(torch.isfinite(p).all() for p in model.parameters())
    state.update(iter=3, task='retrieval')
    with pytest.raises(NonFiniteTrainingError, match=r'\(retrieval: 3\)'):
        model.train_step(_batch('retrieval'), optim_wrapper=wrapper)
