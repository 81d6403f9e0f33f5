import pytest
import torch
from up2_retrieval.metric import RetrievalRecall, retrieval_ranks


def _brute_force(images, texts, owner, ks):
    """Straightforward R@K: full similarity matrix, full sort."""
    images = torch.nn.functional.normalize(images, dim=-1)
    texts = torch.nn.functional.normalize(texts, dim=-1)
    sims = images @ texts.t()
    out = {}
    i2t_ranks = []
    for i in range(len(images)):
        order = sims[i].argsort(descending=True).tolist()
        i2t_ranks.append(min(order.index(t) for t in range(len(texts)) if owner[t] == i))
    t2i_ranks = []
    for t in range(len(texts)):
        order = sims[:, t].argsort(descending=True).tolist()
        t2i_ranks.append(order.index(int(owner[t])))
    for k in ks:
        out[f'i2t_R@{k}'] = 100 * sum(r < k for r in i2t_ranks) / len(i2t_ranks)
    for k in ks:
        out[f't2i_R@{k}'] = 100 * sum(r < k for r in t2i_ranks) / len(t2i_ranks)
    return out


@pytest.mark.parametrize('chunk_size', [1, 7, 1000])
def test_recall_matches_a_brute_force_computation(chunk_size):
    torch.manual_seed(0)
    images = torch.randn(40, 16)
    counts = torch.randint(1, 6, (40,))
    owner = torch.repeat_interleave(torch.arange(40), counts)
    texts = images[owner] + 1.2 * torch.randn(len(owner), 16)  # noisy but informative
    metric = RetrievalRecall(ks=(1, 5, 10), chunk_size=chunk_size)
    results = [(images[i], texts[owner == i]) for i in range(40)]
    got = metric.compute_metrics(results)
    expected = _brute_force(images, texts, owner, (1, 5, 10))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert 0 < got['i2t_R@1'] < 100  # neither trivial nor hopeless
    assert got['rsum'] == pytest.approx(sum(expected.values()))


def test_ranks_are_zero_for_perfect_features():
    images = torch.eye(5)
    i2t, t2i = retrieval_ranks(images, images.repeat_interleave(2, 0),
                               torch.arange(5).repeat_interleave(2))
    assert i2t.tolist() == [0] * 5 and t2i.tolist() == [0] * 10


def test_non_finite_features_are_reported_as_nan_never_as_a_perfect_score():
    images = torch.full((4, 8), float('nan'))  # a diverged model's features
    metric = RetrievalRecall(ks=(1, 5))
    got = metric.compute_metrics([(images[i], images[i:i + 1]) for i in range(4)])
    assert set(got) == {'i2t_R@1', 'i2t_R@5', 't2i_R@1', 't2i_R@5', 'rsum'}
    assert all(value != value for value in got.values())  # NaN, not 100


def test_the_report_holds_the_recall_at_every_k_and_agrees_with_the_metrics(tmp_path):
    import json

    torch.manual_seed(1)
    images = torch.randn(30, 16)
    owner = torch.arange(30).repeat_interleave(2)
    texts = images[owner] + 1.5 * torch.randn(60, 16)
    metric = RetrievalRecall(ks=(1, 5, 10), report_dir=str(tmp_path))
    got = metric.compute_metrics([(images[i], texts[owner == i]) for i in range(30)])
    curves = json.loads((tmp_path / 'recall_at_k.json').read_text())
    assert curves['k'][0] == 1 and len(curves['k']) <= 50
    for k in (1, 5, 10):
        assert curves['i2t'][k - 1] == pytest.approx(got[f'i2t_R@{k}'])
        assert curves['t2i'][k - 1] == pytest.approx(got[f't2i_R@{k}'])
    assert curves['i2t'] == sorted(curves['i2t']) and curves['t2i'][-1] == pytest.approx(100.0)
    assert (tmp_path / 'recall_at_k.png').stat().st_size > 5_000
