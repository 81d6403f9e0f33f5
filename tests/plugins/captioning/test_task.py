import json

import pytest
import torch
from mmengine.structures import BaseDataElement
from up2_captioning.decoding import beam_search
from up2_captioning.task import two_stream_mask
from up2_captioning.vocabulary import vocabulary_ids

from tests.plugins.conftest import tiny_model
from up2core.models.decoder import DecoderCache, Segment, build_attention_mask

CAPTIONS = ['a red circle', 'two blue squares', 'a green star at the top', 'one white cross']


@pytest.fixture(scope='module')
def caption_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('captions') / 'captions.json'
    path.write_text(json.dumps({
        'images': [{'id': i, 'file_name': f'{i}.png'} for i in range(len(CAPTIONS))],
        'annotations': [{'id': i, 'image_id': i, 'caption': c} for i, c in enumerate(CAPTIONS)]}))
    return path


def _samples(texts):
    return [BaseDataElement(metainfo=dict(task='captioning'), texts=[t]) for t in texts]


def _model(make_tiny_model, caption_file, **kwargs):
    return make_tiny_model(dict(captioning=dict(
        type='captioning', vocabulary=dict(ann_file=str(caption_file)), max_length=10,
        **kwargs)))


def _train(model, steps, seed=1):
    torch.manual_seed(seed)
    inputs = torch.randn(len(CAPTIONS), 3, 64, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(inputs, _samples(CAPTIONS), mode='loss')['loss_caption']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return inputs, losses


def test_two_stream_mask_rules():
    prefix, length = 3, 5
    image = Segment(torch.zeros(1, prefix, 4))
    stream = dict(modality='text', causal=True, generative=True)
    segments = [image, Segment(torch.zeros(1, length, 4), **stream),
                Segment(torch.zeros(1, length, 4), **stream)]
    mask = (build_attention_mask(segments, 1, 'cpu') & two_stream_mask(prefix, length, 1))[0]
    c0, p0 = 1 + prefix, 1 + prefix + length
    causal_rows, predict_rows = mask[c0:p0], mask[p0:]
    # nobody before the streams sees them
    assert not mask[:c0, c0:].any()
    # causal stream: the image, its own past and present, never its future or the predictions
    assert causal_rows[:, :c0].all() and not causal_rows[:, p0:].any()
    assert torch.equal(causal_rows[:, c0:p0], torch.ones(length, length).tril().bool())
    # prediction position j: the image, causal positions 0..j (never j+1, the token it predicts,
    # nor later ones) and, of its own stream, only itself
    assert predict_rows[:, :c0].all()
    for j in range(length):
        assert predict_rows[j, c0:c0 + j + 1].all() and not predict_rows[j, c0 + j + 1:p0].any()
        assert predict_rows[j, p0 + j] and predict_rows[j, p0:].sum() == 1


def test_a_prediction_never_depends_on_its_own_or_later_tokens(make_tiny_model, caption_file):
    model = _model(make_tiny_model, caption_file).eval()
    task = model.tasks['captioning']
    torch.manual_seed(0)
    image = model.image_segments(model.encode_image(torch.randn(1, 3, 64, 64)), generative=True)
    prefix = sum(s.tokens.shape[1] for s in image)
    tokens = model.text_encoder.tokenizer(['a red circle at the top'],
                                          return_tensors='pt')['input_ids']
    changed = tokens.clone()
    changed[0, 4:] = 2003  # replace the 4th token and everything after it

    def predictions(ids):
        mask = two_stream_mask(prefix, ids.shape[1], 1)
        return model.decode(image + task._streams(model, ids), extra_mask=mask).segments[-1]

    with torch.no_grad():
        before, after = predictions(tokens), predictions(changed)
    # prediction j predicts the token at position j + 1: positions 0..2 see only tokens 0..3
    torch.testing.assert_close(after[:, :4], before[:, :4])
    assert not torch.allclose(after[:, 4:], before[:, 4:])


def test_trains_and_generates_the_training_captions(make_tiny_model, caption_file):
    model = _model(make_tiny_model, caption_file)
    inputs, losses = _train(model, 60)
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        out = model(inputs, _samples(['unused'] * 4), mode='predict')
    assert [s.pred_caption for s in out] == CAPTIONS
    assert all(s.pred_score <= 0 for s in out)


@pytest.fixture(scope='module')
def half_trained(caption_file):
    """A model trained a little: its captions are not the training ones yet, so searches that
    differ would show it.  Shared by the tests that only decode (in eval, without a change)."""
    model = _model(tiny_model, caption_file)
    inputs, _ = _train(model, 12)
    return model.eval(), torch.cat([inputs, torch.randn(3, 3, 64, 64)])


def test_beam_size_one_gives_exactly_greedys_tokens(half_trained):
    model, inputs = half_trained
    task = model.tasks['captioning']
    with torch.no_grad():
        greedy = task.generate(model, inputs, beam_size=1)
        # beam_search with one beam (generate sends beam_size=1 to greedy_search)
        vocab = task.candidate_ids(model)
        tokenizer = model.text_encoder.tokenizer
        start, end_id, _, unknown = task._special_ids(model)
        image = model.image_segments(model.encode_image(inputs), generative=True)
        cache = model.decode(image, return_cache=True).cache
        y = task.candidate_features(model)

        def step(tokens, state):
            return task._cached_step(model, lambda x: task._log_probs(model, y, x), tokens, state)

        beam = beam_search(step, DecoderCache.select, cache,
                           torch.full((len(inputs), 1), start), vocab,
                           int((vocab == end_id).nonzero()[0, 0]), beam_size=1,
                           max_length=task.max_length, banned=vocab == unknown)
    assert beam.tokens == greedy.tokens
    assert beam.scores == pytest.approx(greedy.scores, abs=1e-5)
    assert len({tuple(t) for t in greedy.tokens}) > 1
    assert any(tokenizer.decode(t) not in CAPTIONS for t in greedy.tokens)


@pytest.mark.parametrize('beam_size', [1, 3])
def test_incremental_decoding_gives_the_tokens_of_full_recomputation(half_trained, beam_size):
    model, inputs = half_trained
    task = model.tasks['captioning']
    with torch.no_grad():
        incremental = task.generate(model, inputs, beam_size=beam_size, incremental=True)
        full = task.generate(model, inputs, beam_size=beam_size, incremental=False)
    assert incremental.tokens == full.tokens
    assert incremental.scores == pytest.approx(full.scores, abs=1e-4)


def test_beam_search_scores_at_least_as_well_as_greedy(half_trained):
    model, inputs = half_trained
    task = model.tasks['captioning']
    with torch.no_grad():
        greedy = task.generate(model, inputs, beam_size=1)
        beam = task.generate(model, inputs, beam_size=4)
    assert all(b >= g - 1e-5 for b, g in zip(beam.scores, greedy.scores))


def test_restricted_vocabulary_never_predicts_an_absent_token(make_tiny_model, caption_file):
    model = _model(make_tiny_model, caption_file)
    tokenizer = model.text_encoder.tokenizer
    purple = tokenizer.convert_tokens_to_ids('purple')
    # a training caption with a word the vocabulary lacks: its target is the unknown token
    inputs = torch.randn(2, 3, 64, 64)
    out = model(inputs, _samples(['a purple circle', 'a red circle']), mode='loss')
    assert torch.isfinite(out['loss_caption'])
    task = model.tasks['captioning']
    vocab = set(task.vocab_ids.tolist())
    assert purple not in vocab and tokenizer.unk_token_id in vocab
    assert len(vocab) == len({t for c in CAPTIONS for t in tokenizer.tokenize(c)}) + 2
    # train on words the vocabulary lacks, until '[UNK]' is the most likely token everywhere:
    # decoding still never emits it, nor 'purple'
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    unknown_words = ['purple magenta violet lilac'] * 2
    for _ in range(10):
        loss = model(inputs, _samples(unknown_words), mode='loss')['loss_caption']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        y = task.candidate_features(model)
        image = model.image_segments(model.encode_image(inputs), generative=True)
        cache = model.decode(image, return_cache=True).cache
        start = torch.full((2, 1), tokenizer.cls_token_id)
        log_probs, _ = task._cached_step(model, lambda x: task._log_probs(model, y, x), start,
                                         cache)
    unk_column = task.vocab_ids.tolist().index(tokenizer.unk_token_id)
    assert (log_probs.argmax(-1) == unk_column).all()
    with torch.no_grad():
        generated = task.generate(model, torch.randn(3, 3, 64, 64), beam_size=2)
    emitted = {t for row in generated.tokens for t in row}
    assert emitted <= vocab - {tokenizer.unk_token_id} and purple not in emitted


def test_full_vocabulary_is_every_token_but_the_special_ones(make_tiny_model):
    model = make_tiny_model(dict(captioning=dict(type='captioning')))
    tokenizer = model.text_encoder.tokenizer
    ids = vocabulary_ids(tokenizer, 'full')
    assert len(ids) == len(tokenizer) - len(set(tokenizer.all_special_ids)) + 2
    assert tokenizer.cls_token_id not in ids and tokenizer.pad_token_id not in ids
    assert tokenizer.sep_token_id in ids and tokenizer.convert_tokens_to_ids('purple') in ids


def test_vocabulary_travels_with_the_checkpoint(make_tiny_model, caption_file, tmp_path):
    model = _model(make_tiny_model, caption_file)
    _train(model, 2)
    state = model.state_dict()
    # a new process without the caption file: the vocabulary comes from the weights
    missing = tmp_path / 'gone.json'
    restored = make_tiny_model(dict(captioning=dict(
        type='captioning', vocabulary=dict(ann_file=str(missing)), max_length=10)))
    restored.load_state_dict(state)
    assert torch.equal(restored.tasks['captioning'].vocab_ids,
                       model.tasks['captioning'].vocab_ids)
    # and so do the words decoding keeps to
    words = restored.tasks['captioning'].word_set(restored)
    assert words is not None and len(words) == len({w for c in CAPTIONS for w in c.split()})
    fresh = make_tiny_model(dict(captioning=dict(
        type='captioning', vocabulary=dict(ann_file=str(missing)))))
    with pytest.raises(FileNotFoundError, match='gone.json'):
        fresh.tasks['captioning'].candidate_ids(fresh)


def test_a_union_vocabulary_keeps_the_checkpoints_words_and_adds_the_configs(
        make_tiny_model, caption_file, tmp_path):
    """``vocabulary_source='union'`` (finetuning on a user's captions): the candidates and the
    word list are the loaded checkpoint's and the new captions' together; ``'config'`` drops
    the checkpoint's."""
    base = _model(make_tiny_model, caption_file)
    _train(base, 1)
    mine = tmp_path / 'mine.json'
    mine.write_text(json.dumps({'images': [{'id': 0, 'file_name': '0.png'}], 'annotations': [
        {'id': 0, 'image_id': 0, 'caption': 'a lemon beside a brick'}]}))
    words_of = {}
    for source in ('union', 'config'):
        model = make_tiny_model(dict(captioning=dict(
            type='captioning', vocabulary=dict(ann_file=str(mine)), max_length=10,
            vocabulary_source=source)))
        model.load_state_dict(base.state_dict())
        task = model.tasks['captioning']
        ids = set(task.candidate_ids(model).tolist())
        tokenizer = model.text_encoder.tokenizer
        assert set(vocabulary_ids(tokenizer, dict(ann_file=str(mine)))) <= ids
        old = set(base.tasks['captioning'].vocab_ids.tolist())
        assert (old <= ids) == (source == 'union')
        words_of[source] = {tokenizer.decode(list(w)) for w in task.word_set(model).complete}
        # saved and loaded again (a resumed finetune, `up2 test --data`): the same vocabulary
        again = make_tiny_model(dict(captioning=dict(
            type='captioning', vocabulary=dict(ann_file=str(mine)), max_length=10,
            vocabulary_source=source)))
        again.load_state_dict(model.state_dict())
        assert set(again.tasks['captioning'].candidate_ids(again).tolist()) == ids
    assert {'lemon', 'brick', 'circle', 'squares', 'star'} <= words_of['union']
    assert 'circle' not in words_of['config'] and 'lemon' in words_of['config']


def test_a_replayed_copy_describes_among_the_vocabulary_of_the_task_it_names(
        make_tiny_model, caption_file, tmp_path):
    """``vocabulary_of`` (a finetune's ``replay_captioning``): the copy's candidates and words
    are the named task's union vocabulary, so its loss on the base's captions pushes down the
    user's words the saved ``captioning`` will predict among; it builds none of its own."""
    base = _model(make_tiny_model, caption_file)
    _train(base, 1)
    mine = tmp_path / 'mine.json'
    mine.write_text(json.dumps({'images': [{'id': 0, 'file_name': '0.png'}], 'annotations': [
        {'id': 0, 'image_id': 0, 'caption': 'a lemon beside a brick'}]}))
    model = make_tiny_model(dict(
        captioning=dict(type='captioning', vocabulary=dict(ann_file=str(mine)), max_length=10,
                        vocabulary_source='union'),
        replay_captioning=dict(type='captioning', vocabulary=dict(ann_file=str(caption_file)),
                               max_length=10, vocabulary_of='captioning')))
    model.load_state_dict(base.state_dict(), strict=False)
    mine_task, replay = model.tasks['captioning'], model.tasks['replay_captioning']
    assert torch.equal(replay.candidate_ids(model), mine_task.candidate_ids(model))
    assert replay.word_set(model) is mine_task.word_set(model)
    assert replay.vocab_ids.numel() == 0  # nothing of its own to save or drift apart
    tokenizer = model.text_encoder.tokenizer
    lemon = tokenizer.convert_tokens_to_ids('lemon')
    model.train()
    samples = [BaseDataElement(metainfo=dict(task='replay_captioning'), texts=[t])
               for t in CAPTIONS]
    out = replay.loss(model, torch.randn(len(CAPTIONS), 3, 64, 64), samples)
    out['loss_caption'].backward()
    assert torch.isfinite(out['loss_caption'])
    assert out['vocabulary_size'] == len(mine_task.candidate_ids(model))
    assert lemon in set(replay.candidate_ids(model).tolist())
    wrong = make_tiny_model(dict(replay_captioning=dict(type='captioning', max_length=10,
                                                        vocabulary_of='captioning')))
    with pytest.raises(ValueError, match="vocabulary_of='captioning' must name a captioning"):
        wrong.tasks['replay_captioning'].candidate_ids(wrong)


def test_a_checkpoint_without_a_word_list_loads_and_builds_it(make_tiny_model, caption_file):
    from up2core.engine.checkpoint import LoadReport

    model = _model(make_tiny_model, caption_file)
    _train(model, 1)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith('word_ids')}
    restored = _model(make_tiny_model, caption_file)
    report = LoadReport(restored.state_dict(), state)
    assert not report.missing  # an empty-until-built buffer is not a fault
    restored.load_state_dict(state)  # strict: the older checkpoint still loads
    task = restored.tasks['captioning']
    assert task.word_ids.numel() == 0
    assert task.word_set(restored) is not None and task.word_ids.numel() > 0
    with torch.no_grad():
        for ids in task.generate(restored.eval(), torch.randn(2, 3, 64, 64)).tokens:
            text = restored.text_encoder.tokenizer.decode(ids)
            assert all(w in ' '.join(CAPTIONS).split() for w in text.split()), text


def test_candidates_are_cached_in_eval_until_the_weights_change(make_tiny_model, caption_file):
    model = _model(make_tiny_model, caption_file).eval()
    task = model.tasks['captioning']
    with torch.no_grad():
        first = task.candidate_features(model)
        assert task.candidate_features(model) is first
        next(model.decoder.parameters()).add_(0.1)  # an optimiser step or a checkpoint load
        second = task.candidate_features(model)
    assert second is not first and not torch.allclose(second, first)
    model.train()
    assert task.candidate_features(model) is not task.candidate_features(model)


def test_infer_returns_caption_and_score_and_honours_beam(half_trained):
    model, inputs = half_trained
    task = model.tasks['captioning']
    with torch.no_grad():
        (sample,) = task.infer(model, inputs[:1], _samples(['x']), beam=3)
    result = task.to_result(sample)
    assert set(result) == {'caption', 'score'} and isinstance(result['caption'], str)
    assert result['caption'] in task.format_result(result)[0]


def test_detokenize_joins_punctuation(make_tiny_model):
    from up2_captioning.task import detokenize

    tokenizer = make_tiny_model(dict(captioning=dict(type='captioning'))).text_encoder.tokenizer
    ids = tokenizer('four shapes from left to right: a red circle (small), a star.',
                    add_special_tokens=False)['input_ids']
    assert detokenize(tokenizer, ids) == \
        'four shapes from left to right: a red circle (small), a star.'


def test_several_captions_per_image_train_as_the_image_repeated_with_each(make_tiny_model,
                                                                          caption_file):
    model = _model(make_tiny_model, caption_file, captions_per_image=2).eval()
    torch.manual_seed(3)
    images = torch.randn(2, 3, 64, 64)
    two_each = [BaseDataElement(metainfo=dict(task='captioning'), texts=CAPTIONS[:2]),
                BaseDataElement(metainfo=dict(task='captioning'), texts=CAPTIONS[2:])]
    repeated = images.repeat_interleave(2, dim=0)
    with torch.no_grad():
        together = model(images, two_each, mode='loss')['loss_caption']
        apart = model(repeated, _samples(CAPTIONS), mode='loss')['loss_caption']
        model.tasks['captioning'].captions_per_image = 1  # the first caption of each only
        first = model(images, two_each, mode='loss')['loss_caption']
        alone = model(images, _samples([CAPTIONS[0], CAPTIONS[2]]), mode='loss')['loss_caption']
    assert torch.allclose(together, apart, atol=1e-5)
    assert torch.allclose(first, alone, atol=1e-5) and not torch.allclose(first, together)
