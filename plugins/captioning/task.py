"""Captioning: each next token is the most likely of the encoded vocabulary."""

from __future__ import annotations

import re
from functools import partial

import torch
from torch import Tensor
from up2_captioning.decoding import Generated, beam_search, greedy_search
from up2_captioning.vocabulary import special_ids, vocabulary_ids, vocabulary_texts
from up2_captioning.words import WordSet

from up2core.models.decoder import DecoderCache, Segment
from up2core.task import Task


def two_stream_mask(prefix: int, length: int, batch: int, device=None) -> Tensor:
    """The extra attention mask of the two caption streams, [B, 1 + P + 2L, 1 + P + 2L].

    The sequence is ``<SPE>``, ``prefix`` image tokens, the causal stream (``length`` tokens),
    then the prediction stream (``length`` tokens).  The decoder's own rules already keep every
    causal position from its future and the image from both streams; this mask adds that
    prediction position ``j`` sees causal positions ``0..j`` only (its own causal token, the one
    it predicts, is causal position ``j + 1``) and, of the prediction stream, itself only.
    """
    n = 1 + prefix + 2 * length
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    c0, p0 = 1 + prefix, 1 + prefix + length
    tri = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    mask[p0:, c0:p0] = tri
    mask[p0:, p0:] = torch.eye(length, dtype=torch.bool, device=device)
    return mask[None].expand(batch, n, n)


class CaptioningTask(Task):
    """Image captioning as a likelihood over the vocabulary, one token at a time.

    Training (teacher forcing, two streams).  A caption ``[start] w_1 .. w_n [end]`` enters the
    decoder twice after the image tokens:

    * the *causal stream* holds ``[start] w_1 .. w_n`` at positions ``0..n``; each position sees
      the image and the causal positions up to itself;
    * the *prediction stream* holds a ``[mask]`` token at positions ``1..n+1``; position ``j``
      sees the image, the causal tokens strictly before it and itself, and its output is scored
      against every vocabulary candidate; the target is the token at position ``j``
      (``w_1 .. w_n, [end]``).

    Caption tokens enter through the text encoder's input embeddings only
    (:meth:`~up2core.models.text_encoder.HFTextEncoder.embed_ids`: the encoder itself is
    bidirectional and would show every token its future); the shared decoder contextualises
    them.  Vocabulary candidates go through the whole text encoder and the decoder on the target
    side (``[start] token [end]``, the ``<SPE>`` output), recomputed every training step and
    cached in eval until the weights change.

    Decoding (greedy or beam search) caches the image's and the generated causal tokens' keys
    and values (:meth:`~up2core.models.decoder.UnifiedDecoder.extend`): each step decodes two new
    positions, the newest causal token (kept in the cache) and one prediction query (not kept).

    Args:
        vocabulary: ``'full'`` or ``dict(ann_file=..., split=None)``; see
            :mod:`up2_captioning.vocabulary`.  Built when first needed and saved in checkpoints.
        max_length: most tokens generated (the end token included); training captions are cut
            to this many tokens too.
        min_length: fewest tokens before the end token may be generated.
        beam_size: 1 for greedy search.
        length_penalty: the exponent ``a`` in ``score = log P / length ** a``.
        incremental: decode with the key/value cache (False: recompute the whole sequence at
            each step; the same tokens, slower; for checks and benchmarks).
        vocab_batch: vocabulary entries encoded per forward pass.
        captions_per_image: training captions used per image (those the sample carries, up to
            this many: ``SampleCaption(num=...)`` keeps them); the image's tokens are repeated
            for each, so more caption supervision costs decoder passes only, not encodings.
        label_smoothing, loss_weight, likelihood_group: of the token cross-entropy.
        vocabulary_source: ``'checkpoint'``: a loaded checkpoint's vocabulary replaces the
            config's (a trained model keeps its words); ``'config'``: the config's is built
            anyway; ``'union'``: the config's and a loaded checkpoint's together (finetuning on
            a user's captions, ``--data``: it learns their words and keeps its own, so it can
            still describe what it saw before in the words it used).
        whole_words: decode only sequences of words of the vocabulary's captions
            (:mod:`up2_captioning.words`; a ``'full'`` vocabulary has no word list and decodes
            freely).  The word list is saved with the weights.
        no_repeat_words: never the word just written again ("a small small").
        vocabulary_of: another task of the model whose vocabulary (candidate tokens and
            words) this one uses instead of its own: a finetune's replayed copy
            (``replay_captioning``) trains on the base's captions among the candidates the
            saved ``captioning`` will predict among (:meth:`replay_options`).

    Examples:
        >>> dict(type='captioning', beam_size=3, max_length=20,
        ...      vocabulary=dict(ann_file='data/coco/annotations/dataset_coco.json',
        ...                      split='train'))
    """

    def __init__(self, vocabulary: str | dict = 'full', max_length: int = 20,
                 min_length: int = 1, beam_size: int = 1, length_penalty: float = 0.0,
                 incremental: bool = True, vocab_batch: int = 4096,
                 captions_per_image: int = 1, label_smoothing: float = 0.0,
                 loss_weight: float = 1.0, likelihood_group: str | None = None,
                 vocabulary_source: str = 'checkpoint', whole_words: bool = True,
                 no_repeat_words: bool = True, vocabulary_of: str | None = None) -> None:
        super().__init__(loss_weight=loss_weight, likelihood_group=likelihood_group)
        if vocabulary_source not in ('checkpoint', 'config', 'union'):
            raise ValueError(f"vocabulary_source must be 'checkpoint', 'config' or 'union', "
                             f'got {vocabulary_source!r}')
        self.vocabulary_source = vocabulary_source
        if max_length < 1 or min_length < 0 or beam_size < 1 or captions_per_image < 1:
            raise ValueError(f'captioning needs max_length >= 1, min_length >= 0, '
                             f'beam_size >= 1 and captions_per_image >= 1; got {max_length}, '
                             f'{min_length}, {beam_size}, {captions_per_image}')
        self.captions_per_image = captions_per_image
        self.vocabulary = vocabulary
        self.max_length, self.min_length = max_length, min_length
        self.beam_size, self.length_penalty = beam_size, length_penalty
        self.incremental, self.vocab_batch = incremental, vocab_batch
        self.label_smoothing = label_smoothing
        # The candidate token ids; empty until first built, then saved with the weights.
        self.register_buffer('vocab_ids', torch.zeros(0, dtype=torch.long))
        # The words of the vocabulary's captions (WordSet.to_tensor); empty until first built.
        self.register_buffer('word_ids', torch.zeros(0, dtype=torch.long))
        self.whole_words, self.no_repeat_words = whole_words, no_repeat_words
        self.vocabulary_of = vocabulary_of
        self._words: WordSet | None = None
        # a loaded checkpoint's (vocab_ids, word_ids) under vocabulary_source='union'
        self._inherited: tuple[Tensor, Tensor] | None = None

    data_layout = 'captions'
    headline_metrics = ('CIDEr', 'BLEU-4')

    @classmethod
    def data_options(cls, layout, source, names) -> dict:
        """The restricted vocabulary: the tokens of the user's training captions, with those
        of a checkpoint it starts from."""
        split = source.split('train') or source.split('val')
        return {'vocabulary': dict(ann_file=str(split.ann)), 'vocabulary_source': 'union'}

    @classmethod
    def replay_options(cls, task, own) -> dict:
        """The replayed copy describes the base's images among the saved task's candidates
        (the union of the user's words and the base's): trained among the base's words
        alone, it would never learn to keep the user's words off the base's images."""
        return {'vocabulary_of': task}

    # ------------------------------------------------------------------ vocabulary

    def _owner(self, model) -> CaptioningTask:
        """The task whose vocabulary this one uses (itself unless ``vocabulary_of``)."""
        if not self.vocabulary_of:
            return self
        owner = model.tasks[self.vocabulary_of] if self.vocabulary_of in model.tasks else None
        if not isinstance(owner, CaptioningTask) or owner.vocabulary_of:
            raise ValueError(f"task '{self.name}': vocabulary_of={self.vocabulary_of!r} must "
                             f'name a captioning task of the model with a vocabulary of its '
                             f'own')
        return owner

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + 'word_ids' not in state_dict:  # a checkpoint of UP2 < 0.9: built on use
            state_dict[prefix + 'word_ids'] = self.word_ids.detach().clone()
        if prefix + 'vocab_ids' not in state_dict:
            # a checkpoint without this task (a finetune's replayed copy, replay_<task>): the
            # vocabulary is built from the config on first use, as for a new model, so the
            # loader has nothing to call missing
            state_dict[prefix + 'vocab_ids'] = self.vocab_ids.detach().clone()
        if self.vocabulary_source == 'union' and state_dict.get(prefix + 'vocab_ids') is not None \
                and state_dict[prefix + 'vocab_ids'].numel():
            # kept aside and joined with the config's when the vocabulary is built
            self._inherited = (state_dict[prefix + 'vocab_ids'].detach().cpu().clone(),
                               state_dict[prefix + 'word_ids'].detach().cpu().clone())
            for name in ('vocab_ids', 'word_ids'):
                getattr(self, name).data = torch.zeros(0, dtype=torch.long,
                                                       device=getattr(self, name).device)
        for name in ('vocab_ids', 'word_ids'):
            saved, buffer = state_dict.get(prefix + name), getattr(self, name)
            if saved is not None and self.vocabulary_source in ('config', 'union'):
                # finetuning on other captions: the vocabulary is rebuilt from this config's
                # (the user's) training captions, not taken over from the checkpoint
                state_dict[prefix + name] = buffer.detach().clone()
            elif saved is not None and saved.shape != buffer.shape:
                buffer.data = torch.zeros_like(saved, device=buffer.device)
        self._words = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _special_ids(self, model) -> tuple[int, int, int, int]:
        """(start, end, mask, unknown) token ids of the model's tokenizer (looked up once)."""
        if getattr(self, '_specials', None) is None:
            self._specials = special_ids(model.text_encoder.tokenizer)
        return self._specials

    def candidate_ids(self, model) -> Tensor:
        """[V] the candidate token ids; built from ``vocabulary`` on first use (with the word
        list, so that both are in the first checkpoint)."""
        if self.vocabulary_of:
            return self._owner(model).candidate_ids(model)
        if self.vocab_ids.numel() == 0:
            tokenizer = model.text_encoder.tokenizer
            ids = vocabulary_ids(tokenizer, self.vocabulary)
            inherited = self._inherited
            if inherited is not None:  # 'union': the checkpoint's words stay candidates
                ids = sorted(set(ids) | set(inherited[0].tolist()))
            # .data keeps the buffer object (a DDP wrapper holds it) and changes its contents.
            self.vocab_ids.data = torch.tensor(ids, dtype=torch.long,
                                               device=self.vocab_ids.device)
            texts = vocabulary_texts(self.vocabulary)
            if texts is not None:
                words = WordSet.from_texts(tokenizer, texts, keep=set(ids))
                if inherited is not None and inherited[1].numel():
                    words = WordSet(words.complete | WordSet.from_tensor(inherited[1]).complete)
                self._set_words(words)
        return self.vocab_ids

    def _set_words(self, words: WordSet) -> None:
        self.word_ids.data = words.to_tensor().to(self.word_ids.device)
        self._words = None

    def word_set(self, model) -> WordSet | None:
        """The known words decoding keeps to (None: free decoding, under a ``'full'``
        vocabulary or ``whole_words=False``); built with the vocabulary, saved with it."""
        if not self.whole_words:
            return None
        if self.vocabulary_of:
            return self._owner(model).word_set(model)
        if self._words is None:
            ids = self.candidate_ids(model)
            if self.word_ids.numel() == 0:
                # a checkpoint saved before word lists existed: its config's captions, if here
                try:
                    texts = vocabulary_texts(self.vocabulary)
                except FileNotFoundError:
                    texts = None
                if texts is None:
                    return None
                self._set_words(WordSet.from_texts(model.text_encoder.tokenizer, texts,
                                                   keep=set(ids.tolist())))
            self._words = WordSet.from_tensor(self.word_ids, no_repeat=self.no_repeat_words)
        return self._words

    def _columns(self, model, token_ids: Tensor) -> Tensor:
        """Candidate column of each token id (the unknown token's for ids not in the set)."""
        ids = self.candidate_ids(model)
        _, _, _, unknown = self._special_ids(model)
        table = torch.full((max(int(ids.max()), int(token_ids.max())) + 1,),
                           int((ids == unknown).nonzero()[0, 0]), dtype=torch.long,
                           device=ids.device)
        table[ids] = torch.arange(len(ids), device=ids.device)
        return table[token_ids]

    def candidate_features(self, model) -> Tensor:
        """[V, C] decoder features of every candidate token: computed on every call in
        training, cached in eval until the weights change
        (:meth:`~up2core.task.Task.cached_candidates`)."""
        def compute() -> Tensor:
            ids = self.candidate_ids(model)
            start, end, _, _ = self._special_ids(model)
            features = []
            for chunk in ids.split(self.vocab_batch):
                seq = torch.stack([torch.full_like(chunk, start), chunk,
                                   torch.full_like(chunk, end)], dim=1)
                tokens = model.text_encoder.encode_ids(seq)
                features.append(model.decode([Segment(tokens, modality='text', target=True,
                                                      generative=True, source='text')]).spe)
            return torch.cat(features)

        return self.cached_candidates(model, 'vocabulary', compute)

    # ------------------------------------------------------------------ sequences

    def _streams(self, model, tokens: Tensor, causal_valid: Tensor | None = None,
                 predict_valid: Tensor | None = None, start: int = 0) -> list[Segment]:
        """The causal and prediction segments for ``tokens`` [N, T], the causal stream at
        positions ``start .. start+T-1`` and the prediction stream one position later."""
        _, _, mask_id, _ = self._special_ids(model)
        positions = start + torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        embed = model.text_encoder.embed_ids
        causal = embed(tokens, positions)
        predict = embed(torch.full_like(tokens, mask_id), positions + 1)
        kind = dict(modality='text', causal=True, generative=True, source='text')
        return [Segment(causal, causal_valid, **kind), Segment(predict, predict_valid, **kind)]

    def _tokenize(self, model, texts: list[str]) -> tuple[Tensor, Tensor]:
        encoder = model.text_encoder
        batch = encoder.tokenizer(list(texts), padding=True, truncation=True,
                                  max_length=self.max_length + 1, return_tensors='pt')
        device = self.vocab_ids.device
        return batch['input_ids'].to(device), batch['attention_mask'].to(device).bool()

    def loss(self, model, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        per_image = [list(s.texts[:self.captions_per_image]) for s in data_samples]
        texts = [t for captions in per_image for t in captions]
        ids, valid = self._tokenize(model, texts)
        # inputs [start] w_1..w_n; targets w_1..w_n [end] (padding where the caption is shorter)
        inputs_ids, targets, target_valid = ids[:, :-1], ids[:, 1:], valid[:, 1:]
        image = model.image_segments(model.encode_image(inputs), generative=True)
        if len(texts) != len(data_samples):  # several captions of an image: repeat its tokens
            rows = torch.repeat_interleave(
                torch.arange(len(per_image), device=inputs.device),
                torch.tensor([len(c) for c in per_image], device=inputs.device))
            image = _select_segments(image, rows)
        streams = self._streams(model, inputs_ids, valid[:, :-1], target_valid)
        prefix = sum(s.tokens.shape[1] for s in image)
        mask = two_stream_mask(prefix, inputs_ids.shape[1], len(texts), inputs.device)
        out = model.decode(image + streams, extra_mask=mask).segments[-1]
        x = out[target_valid]
        y = self.candidate_features(model)
        columns = self._columns(model, targets[target_valid])
        loss = model.likelihood.loss(x, y, columns, group=self.likelihood_group,
                                     weight=self.loss_weight,
                                     label_smoothing=self.label_smoothing)
        with torch.no_grad():
            logits = model.likelihood.logits(x, y, self.likelihood_group)
            accuracy = (logits.argmax(-1) == columns).float().mean() * 100
        return {'loss_caption': loss, 'acc_token': accuracy,
                'vocabulary_size': torch.tensor(float(len(y)))}

    # ------------------------------------------------------------------ decoding

    def generate(self, model, inputs: Tensor, beam_size: int | None = None,
                 max_length: int | None = None, incremental: bool | None = None) -> Generated:
        """Captions (token ids and scores) for a batch of images; arguments left None take the
        task's settings."""
        beam_size = self.beam_size if beam_size is None else beam_size
        max_length = self.max_length if max_length is None else max_length
        incremental = self.incremental if incremental is None else incremental
        start, end_id, _, unknown = self._special_ids(model)
        vocab = self.candidate_ids(model)
        y = self.candidate_features(model)
        image = model.image_segments(model.encode_image(inputs), generative=True)
        scores = partial(self._log_probs, model, y)
        if incremental:
            state = model.decode(image, return_cache=True).cache
            step = partial(self._cached_step, model, scores)
            reorder = DecoderCache.select
        else:
            state = image
            step = partial(self._full_step, model, scores)
            reorder = _select_segments
        start_tokens = torch.full((inputs.shape[0], 1), start, dtype=torch.long,
                                  device=inputs.device)
        end = int((vocab == end_id).nonzero()[0, 0])
        words = self.word_set(model)
        settings = dict(max_length=max_length, min_length=self.min_length,
                        length_penalty=self.length_penalty, banned=vocab == unknown,
                        constraint=None if words is None else
                        partial(words.banned_columns, vocab=vocab, end=end))
        if beam_size == 1:
            return greedy_search(step, state, start_tokens, vocab, end, **settings)
        return beam_search(step, reorder, state, start_tokens, vocab, end, beam_size=beam_size,
                           **settings)

    def _log_probs(self, model, candidates: Tensor, x: Tensor) -> Tensor:
        return model.likelihood.logits(x, candidates, self.likelihood_group).log_softmax(-1)

    def _cached_step(self, model, scores, tokens: Tensor, cache: DecoderCache):
        """Decode the newest causal token (kept in the cache) and the next prediction query.

        Both are one two-token segment (they share modality and attribute): under ``extend``'s
        default rule the causal token sees the cache and itself, the query the cache, the causal
        token and itself, which is what they see in the full two-stream sequence.
        """
        t = tokens.shape[1] - 1
        _, _, mask_id, _ = self._special_ids(model)
        ids = torch.cat([tokens[:, -1:], torch.full_like(tokens[:, -1:], mask_id)], dim=1)
        positions = torch.tensor([t, t + 1], device=ids.device).expand_as(ids)
        step = Segment(model.text_encoder.embed_ids(ids, positions), modality='text',
                       causal=True, generative=True, source='text')
        (out,), cache = model.extend(cache, [step], keep=1)
        return scores(out[:, 1]), cache

    def _full_step(self, model, scores, tokens: Tensor, image: list[Segment]):
        """Decode the image and the whole caption so far again; score the last prediction."""
        streams = self._streams(model, tokens)
        prefix = sum(s.tokens.shape[1] for s in image)
        mask = two_stream_mask(prefix, tokens.shape[1], tokens.shape[0], tokens.device)
        out = model.decode(image + streams, extra_mask=mask).segments[-1]
        return scores(out[:, -1]), image

    def predict(self, model, inputs: Tensor, data_samples: list) -> list:
        """``pred_caption`` (text) and ``pred_score`` of each image, with the configured search."""
        return self.infer(model, inputs, data_samples)

    def infer(self, model, inputs: Tensor, data_samples: list, beam: int | None = None,
              **kwargs) -> list:
        """:meth:`predict`, with ``beam`` overriding the configured beam size."""
        generated = self.generate(model, inputs, beam_size=beam)
        tokenizer = model.text_encoder.tokenizer
        for sample, ids, score in zip(data_samples, generated.tokens, generated.scores):
            sample.pred_caption = detokenize(tokenizer, ids)
            sample.pred_score = float(score)
        return data_samples

    def export_head(self, model, **options):
        """``log_probs`` ``[N, L, V]``: every position's next-token log-probabilities for
        ``tokens`` ``[N, L]`` (:mod:`up2_captioning.export`; the search loop stays outside)."""
        from up2_captioning.export import CaptionStepsHead

        start, end, _, unknown = self._special_ids(model)
        ids = self.candidate_ids(model)
        metadata = {'vocab_ids': ids.tolist(),
                    'tokens': model.text_encoder.tokenizer.convert_ids_to_tokens(ids.tolist()),
                    'start_id': start, 'end_id': end, 'unknown_id': unknown,
                    'max_length': self.max_length, 'min_length': self.min_length,
                    'length_penalty': self.length_penalty}
        words = self.word_set(model)
        if words is not None:  # the search outside the graph keeps to the same words
            metadata.update(word_ids=words.to_tensor().tolist(),
                            no_repeat_words=self.no_repeat_words)
        return CaptionStepsHead(self, self.candidate_features(model), start, self.max_length,
                                metadata)

    def to_result(self, sample) -> dict:
        """``caption`` and its ``score``: the summed log-probability of its tokens (the end
        token included), divided by ``length ** length_penalty``."""
        return {'caption': sample.pred_caption, 'score': sample.pred_score}

    def format_result(self, result: dict) -> list[str]:
        return [f"  {result['caption']}", f"  (score {result['score']:.3f})"]


def detokenize(tokenizer, ids: list[int]) -> str:
    """Token ids -> text, without the space word-piece tokenizers leave before punctuation."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return re.sub(r'\(\s+', '(', re.sub(r'\s+([.,:;!?)])', r'\1', text)).strip()


def _select_segments(segments: list[Segment], rows: Tensor) -> list[Segment]:
    """The image segments of batch rows ``rows`` (for beams under full recomputation)."""
    out = []
    for seg in segments:
        out.append(Segment(seg.tokens.index_select(0, rows),
                           None if seg.valid is None else seg.valid.index_select(0, rows),
                           modality=seg.modality, target=seg.target, causal=seg.causal,
                           generative=seg.generative, source=seg.source))
    return out
