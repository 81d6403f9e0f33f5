"""Distillation from a frozen copy: zero at the start, it pulls the student back, and the
teacher stays out of the model's state."""

from __future__ import annotations

import pytest
import torch
from mmengine.structures import BaseDataElement

from tests.plugins.conftest import region_batch, tiny_model, tiny_region_model
from up2core.models.distillation import (
    LOSS_NAME,
    DecoderDistillation,
    frozen_copy,
    image_distance,
)
from up2core.optim.mt_adamw import MTAdamW

CLASSES = dict(classification=dict(type='classification', class_names=['cat', 'dog', 'bird']))


def _samples(labels=(0, 1, 2)):
    return [BaseDataElement(metainfo=dict(task='classification'), gt_label=i) for i in labels]


def _distilled(model, weight=1.0):
    model.train()
    model.distillation = DecoderDistillation(frozen_copy(model), weight)
    return model


def test_at_the_start_the_student_is_its_teacher_and_the_term_is_zero():
    model = _distilled(tiny_model(CLASSES))
    torch.manual_seed(0)
    losses = model(torch.randn(3, 3, 64, 64), _samples(), mode='loss')
    assert set(losses) >= {'loss_cls', LOSS_NAME}
    assert float(losses[LOSS_NAME].detach()) == pytest.approx(0.0, abs=1e-5)
    assert LOSS_NAME not in str(model.state_dict().keys())
    assert not any(name.startswith('distillation') for name, _ in model.named_parameters())


def test_region_tasks_and_shared_steps_get_a_term_each_the_teachers_draws_the_students():
    tasks = dict(detection=dict(type='detection', class_names=['a', 'b', 'c']),
                 segmentation=dict(type='segmentation', class_names=['a', 'b', 'c']))
    model = _distilled(tiny_region_model(tasks))
    images, detection = region_batch('detection', with_masks=False)
    _, segmentation = region_batch('segmentation', with_masks=True)
    taught = model.distillation.run_teacher(images, {'detection': detection,
                                                     'segmentation': segmentation})
    assert set(taught) == {'detection', 'segmentation'} and taught['detection']
    losses = model(images, {'detection': detection, 'segmentation': segmentation}, mode='loss')
    for task in ('detection', 'segmentation'):
        # router noise and denoising queries drawn alike: the same model, the same outputs
        assert float(losses[task][LOSS_NAME].detach()) == pytest.approx(0.0, abs=1e-5), task


def _train(model, steps, labels):
    optimizer = MTAdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(steps):
        torch.manual_seed(100 + step)
        losses = model(torch.randn(3, 3, 64, 64), _samples(labels), mode='loss')
        optimizer.set_task('classification', 1.0, 1.0, num_tasks=1)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        optimizer.zero_grad()
    return losses


def _features(model, images):
    model.eval()
    with torch.no_grad():
        return model.decode(model.image_segments(model.encode_image(images))).spe


def test_the_term_pulls_the_student_back_towards_the_teacher():
    """The same steps on relabelled data: with distillation the image features the old tasks
    read move less from the base's, and the teacher never changes."""
    torch.manual_seed(7)
    held_out = torch.randn(4, 3, 64, 64)
    base = tiny_model(CLASSES)
    before = _features(base, held_out)

    def drift(weight):
        model = tiny_model(CLASSES)
        if weight:
            _distilled(model, weight)
            teacher = {k: v.clone() for k, v in model.distillation.teacher.state_dict().items()}
        else:
            model.train()
        losses = _train(model, 6, labels=(2, 2, 0))
        if weight:
            assert float(losses[LOSS_NAME].detach()) > 0  # the student moved: the term is alive
            assert all(torch.equal(teacher[k], v) for k, v in
                       model.distillation.teacher.state_dict().items())
        after = _features(model, held_out)
        return float((1 - torch.cosine_similarity(after, before, dim=-1)).mean())

    plain, distilled = drift(0), drift(5.0)
    assert plain > 1e-3
    assert distilled < 0.7 * plain, (plain, distilled)


def test_a_weight_that_is_not_positive_and_finite_is_refused():
    model = tiny_model(CLASSES)
    for weight in (0, -1, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='weight must be > 0'):
            DecoderDistillation(model, weight)


def test_only_the_tasks_named_distil_and_the_teacher_runs_on_their_batches_alone():
    tasks = dict(detection=dict(type='detection', class_names=['a', 'b', 'c']),
                 replay_detection=dict(type='detection', class_names=['a', 'b', 'c']))
    model = tiny_region_model(tasks).train()
    model.distillation = DecoderDistillation(frozen_copy(model), 1.0, tasks=['replay_*'])
    assert model.distillation.covers('replay_detection')
    assert not model.distillation.covers('detection')
    images, detection = region_batch('detection', with_masks=False)
    runs = []
    teacher_forward = model.distillation.teacher.recorded_forward
    model.distillation.teacher.recorded_forward = \
        lambda inputs, samples: runs.append(samples) or teacher_forward(inputs, samples)
    losses = model(images, detection, mode='loss')
    assert LOSS_NAME not in losses and 'loss_region_cls' in losses and not runs
    _, replayed = region_batch('replay_detection', with_masks=False)
    losses = model(images, replayed, mode='loss')
    assert float(losses[LOSS_NAME].detach()) == pytest.approx(0.0, abs=1e-5) and len(runs) == 1
    shared = model(images, {'detection': detection, 'replay_detection': replayed}, mode='loss')
    assert LOSS_NAME in shared['replay_detection'] and LOSS_NAME not in shared['detection']
    assert list(runs[-1]) == ['replay_detection']  # the teacher ran on the distilling task only


def test_tasks_must_be_a_list_of_patterns():
    model = tiny_model(CLASSES)
    for tasks in ('replay_*', []):
        with pytest.raises(ValueError, match='list of task-name patterns'):
            DecoderDistillation(model, 1.0, tasks=tasks)


def test_the_image_encoders_maps_can_be_kept_too_zero_at_the_start_alive_after_a_change():
    tasks = dict(detection=dict(type='detection', class_names=['a', 'b', 'c']))
    model = tiny_region_model(tasks).train()
    images, detection = region_batch('detection', with_masks=False)
    plain = DecoderDistillation(frozen_copy(model), 1.0)
    with_image = DecoderDistillation(plain.teacher, 1.0, image=True)
    taught = with_image.run_teacher(images, detection)['detection']
    kinds = [kind for kind, _, segments in taught if segments is None]
    assert kinds and kinds[0][0] == 'image encoder'
    with torch.random.fork_rng():
        _, learned = model.recorded_forward(images, detection)
    assert float(with_image.loss(learned['detection'], taught).detach()) == \
        pytest.approx(0, abs=1e-5)
    with torch.no_grad():  # the neck moves: only the distillation that keeps the maps sees it
        for param in model.image_encoder.neck.parameters():
            param.add_(0.05 * torch.randn_like(param))
    with torch.random.fork_rng():
        _, learned = model.recorded_forward(images, detection)
    image_terms = [image_distance(s, t) for (kind, s, seg), (_, t, _) in
                   zip(learned['detection'], taught) if seg is None]
    assert image_terms and float(image_terms[0].detach()) > 1e-4
    decoder_only = [entry for entry in learned['detection'] if entry[2] is not None]
    assert float(plain.loss(learned['detection'], taught).detach()) == \
        pytest.approx(float(plain.loss(decoder_only, taught).detach()))  # (maps ignored)
