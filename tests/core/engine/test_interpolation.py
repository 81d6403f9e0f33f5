"""Weight interpolation (``up2 merge``): its endpoints are the two checkpoints, it keeps every
task of both, and it refuses checkpoints of different models."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import run_up2
from up2core.engine.interpolation import MERGE_KEY, interpolate_states, merge_checkpoints
from up2core.errors import CheckpointError


def _states():
    torch.manual_seed(0)
    base = {'decoder.w': torch.randn(4, 3), 'likelihood.log_scale.captioning': torch.randn(1),
            'tasks.captioning.vocab_ids': torch.arange(5),
            'half': torch.randn(3).to(torch.float16)}
    finetuned = {'decoder.w': torch.randn(4, 3), 'likelihood.log_scale.detection': torch.randn(1),
                 'tasks.captioning.vocab_ids': torch.arange(7),
                 'half': torch.randn(3).to(torch.float16)}
    return base, finetuned


def _save(path, state, meta=None):
    torch.save({'meta': meta or {}, 'state_dict': state}, path)
    return path


@pytest.mark.parametrize('alpha', [0.0, 1.0])
def test_the_endpoints_are_the_two_checkpoints_plus_what_only_the_other_holds(alpha):
    base, finetuned = _states()
    merged = interpolate_states(base, finetuned, alpha)
    ends = finetuned if alpha == 1.0 else base
    assert torch.equal(merged['decoder.w'], ends['decoder.w'])
    assert torch.equal(merged['half'], ends['half']) and merged['half'].dtype == torch.float16
    # the dropped task's own tensor stays, the new task's comes along, ids are never averaged
    assert torch.equal(merged['likelihood.log_scale.captioning'],
                       base['likelihood.log_scale.captioning'])
    assert torch.equal(merged['likelihood.log_scale.detection'],
                       finetuned['likelihood.log_scale.detection'])
    assert torch.equal(merged['tasks.captioning.vocab_ids'], torch.arange(7))


def test_an_inner_alpha_is_the_straight_line_between_them():
    base, finetuned = _states()
    merged = interpolate_states(base, finetuned, 0.3)
    assert torch.allclose(merged['decoder.w'], 0.7 * base['decoder.w'] + 0.3 * finetuned['decoder.w'])


def test_checkpoints_of_different_models_or_an_alpha_outside_0_1_are_refused(tmp_path):
    base, finetuned = _states()
    finetuned['decoder.w'] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=r'decoder.w: shape \(4, 3\) in the base, \(5, 3\)'):
        interpolate_states(base, finetuned, 0.5)
    with pytest.raises(ValueError, match='alpha must lie in'):
        interpolate_states(*_states(), 1.5)
    a, b = _save(tmp_path / 'a.pth', base), _save(tmp_path / 'b.pth', finetuned)
    with pytest.raises(CheckpointError, match='up2 merge .*a.pth .*b.pth: decoder.w: shape'):
        merge_checkpoints(a, b, 0.5, tmp_path / 'out.pth')
    assert not (tmp_path / 'out.pth').exists()


def test_up2_merge_writes_one_checkpoint_that_records_how_it_was_made(tmp_path):
    base, finetuned = _states()
    card = {'names': {'detection': {'classes': ['arrow']}}, 'metrics': {'detection/bbox_mAP': 0.9},
            'metrics_iter': 100}
    a = _save(tmp_path / 'a.pth', base)
    b = _save(tmp_path / 'b.pth', finetuned, {'up2_card': card, 'iter': 100})
    out = tmp_path / 'merged.pth'
    result = run_up2('merge', str(a), str(b), '--alpha', '0.5', '--out', str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    merged = torch.load(out, map_location='cpu', weights_only=True)
    assert merged['meta'][MERGE_KEY] == {'base': str(a), 'finetuned': str(b), 'alpha': 0.5}
    # the finetune's names stay; its metrics are not the merged model's, so they go
    assert merged['meta']['up2_card'] == {'names': card['names']}
    assert torch.allclose(merged['state_dict']['decoder.w'],
                          (base['decoder.w'] + finetuned['decoder.w']) / 2)
    for args, message in ((['--alpha', '0.5'], f'up2: error: {out} exists: add --overwrite'),
                          (['--alpha', '2', '--overwrite'], 'up2: error: --alpha 2: give a value '
                                                            'in [0, 1]')):
        result = run_up2('merge', str(a), str(b), '--out', str(out), *args, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
            message), result.stderr[-2000:]
