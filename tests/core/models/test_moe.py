import pytest
import torch

from up2core.models.moe import AttributeRouter, MoELinear, attribute


def test_attribute_vectors_follow_the_documented_bits():
    assert attribute('image') == (1, 0, 0, 1, 1, 0, 0, 0)
    assert attribute('text', target=True) == (1, 0, 0, 1, 0, 1, 1, 0)
    assert attribute('text', causal=True, generative=True) == (1, 1, 0, 1, 0, 1, 0, 1)
    assert attribute('region')[2] == 1
    with pytest.raises(ValueError, match='modality'):
        attribute('audio')


def test_router_gives_top_k_weights_that_sum_to_one():
    router = AttributeRouter(num_experts=8, top_k=2).eval()
    gates = router(torch.tensor([attribute('image'), attribute('text', target=True)]))
    assert gates.dtype == torch.float32 and gates.shape == (2, 8)
    assert ((gates > 0).sum(dim=1) == 2).all()
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(2))


def test_router_noise_only_in_training():
    router = AttributeRouter(num_experts=8, top_k=8)
    attrs = torch.tensor([attribute('image')])
    router.eval()
    assert torch.equal(router(attrs), router(attrs))
    router.train()
    assert not torch.equal(router(attrs), router(attrs))


def test_merged_weights_equal_the_explicit_gate_weighted_mixture_of_experts():
    torch.manual_seed(0)
    layer = MoELinear(16, 12, num_experts=8).double()
    router = AttributeRouter(num_experts=8, top_k=2).double().eval()
    attrs = torch.tensor([attribute('image'), attribute('text', target=True)]).double()
    gates = router(attrs)
    index = torch.tensor([0, 0, 1, 1, 1, 0])  # per position: which attribute
    x = torch.randn(3, 6, 16, dtype=torch.double)
    merged = layer(x, gates, index)
    explicit = torch.zeros_like(merged)
    for pos, a in enumerate(index.tolist()):
        for e in range(8):
            expert_out = x[:, pos] @ layer.weight[e].t() + layer.bias[e]
            explicit[:, pos] += gates[a, e] * expert_out
    torch.testing.assert_close(merged, explicit)
    # and it is a real mixture: a single expert would give something else
    assert not torch.allclose(merged, layer(x))


def test_gradients_reach_only_the_chosen_experts_and_the_router():
    torch.manual_seed(0)
    layer = MoELinear(8, 8, num_experts=4)
    router = AttributeRouter(num_experts=4, top_k=2).eval()
    gates = router(torch.tensor([attribute('image')]))
    layer(torch.randn(2, 3, 8), gates, torch.zeros(3, dtype=torch.long)).sum().backward()
    chosen = set(gates[0].nonzero().flatten().tolist())
    for e in range(4):
        assert (layer.weight.grad[e].abs().sum() > 0) == (e in chosen)
    assert router.logits.weight.grad.abs().sum() > 0


def test_one_expert_is_a_plain_linear_layer():
    layer = MoELinear(5, 3, num_experts=1)
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(layer(x), x @ layer.weight[0].t() + layer.bias[0])


def test_inference_reuses_merged_weights_until_the_weights_change():
    torch.manual_seed(0)
    layer = MoELinear(6, 4, num_experts=4)
    router = AttributeRouter(num_experts=4, top_k=2).eval()
    gates = router(torch.tensor([attribute('image'), attribute('region')]))
    index = torch.tensor([0, 1, 1])
    x = torch.randn(2, 3, 6)

    def fresh() -> torch.Tensor:  # the mixture computed from scratch, as training does
        with torch.enable_grad():
            return layer(x, gates, index).detach()

    with torch.no_grad():
        first = layer(x, gates, index)
        assert len(layer._inference_merged) == 2  # one merge per attribute, kept
        torch.testing.assert_close(layer(x, gates, index), first)
        torch.testing.assert_close(first, fresh())
        # an optimiser step changes the weights in place: the kept merges must not be used
        optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    layer(x, gates, index).sum().backward()
    optimizer.step()
    with torch.no_grad():
        stepped = layer(x, gates, index)
    assert not torch.allclose(stepped, first)
    torch.testing.assert_close(stepped, fresh())
    # so must reloading a checkpoint
    state = {k: torch.randn_like(v) for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, gates, index), fresh())
    # and other gates (another attribute route) get their own merge
    with torch.no_grad():
        other = layer(x, gates.flip(0), index)
    assert not torch.allclose(other, layer(x, gates, index).detach())


def test_several_attributes_under_autocast_give_the_autocast_dtype():
    """Mixed precision (``--amp``, bf16 autocast): the per-attribute products come out in
    the autocast dtype, and the layer's output takes it rather than failing to mix dtypes."""
    torch.manual_seed(0)
    layer = MoELinear(8, 6, num_experts=4)
    router = AttributeRouter(num_experts=4, top_k=2).eval()
    gates = router(torch.tensor([attribute('image'), attribute('text', target=True)]))
    index = torch.tensor([0, 1, 1, 0])
    x = torch.randn(2, 4, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = layer(x, gates, index)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), layer(x, gates, index), atol=5e-2, rtol=5e-2)
