"""The export-friendly stand-ins compute what the eager model computes, and trace."""

from __future__ import annotations

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention

from up2core.export import TraceableDeformableAttention, traceable
from up2core.models.decoder import Segment, UnifiedDecoder
from up2core.models.proposals import RegionProposalNetwork


def _network():
    torch.manual_seed(0)
    network = RegionProposalNetwork(num_queries=12, num_proposal_tokens=8, num_encoder_layers=1,
                                    num_decoder_layers=2)
    network.init_weights()
    return network.eval()


def _features(batch=2):
    torch.manual_seed(1)
    return [torch.randn(batch, 256, s, s) for s in (32, 16, 8, 4)]


def test_proposals_inside_traceable_equal_the_eager_ones_and_the_layers_are_restored():
    network = _network()
    features = _features()
    with torch.no_grad():
        tokens, proposals = network(features)
        with traceable(network):
            assert network.static_shapes
            swapped = [m for m in network.modules() if isinstance(m, MultiScaleDeformableAttention)]
            assert swapped and all(type(m) is TraceableDeformableAttention for m in swapped)
            tokens2, proposals2 = network(features)
    torch.testing.assert_close(tokens2, tokens, rtol=0, atol=1e-6)
    for key in ('boxes', 'objectness', 'masks'):
        torch.testing.assert_close(proposals2[key], proposals[key], rtol=0, atol=1e-6)
    assert torch.equal(proposals2['indices'], proposals['indices'])
    assert not network.static_shapes
    assert all(type(m) is MultiScaleDeformableAttention for m in network.modules()
               if isinstance(m, MultiScaleDeformableAttention))


def test_traceable_attention_reads_a_tensor_of_sizes_too_and_names_a_mismatch():
    attention = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=2,
                                              num_points=2, batch_first=True).eval()
    query = torch.randn(1, 5, 32)
    value = torch.randn(1, 16 + 4, 32)
    points = torch.rand(1, 5, 2, 2)
    shapes = torch.tensor([[4, 4], [2, 2]])
    starts = torch.tensor([0, 16])
    with torch.no_grad():
        expected = attention(query, value=value, reference_points=points, spatial_shapes=shapes,
                             level_start_index=starts)
        attention.__class__ = TraceableDeformableAttention
        got = attention(query, value=value, reference_points=points, spatial_shapes=shapes)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        with pytest.raises(ValueError, match=r'levels \[\(4, 4\), \(3, 3\)\] hold 25 positions, '
                                             r'the value 20'):
            attention(query, value=value, reference_points=points,
                      spatial_shapes=[(4, 4), (3, 3)])


def test_the_proposal_network_exports_with_a_free_batch_size():
    network = _network()
    features = _features()
    with torch.no_grad():
        expected_tokens, expected = network(features)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, a, b, c, d):
            tokens, proposals = self.network([a, b, c, d])
            return tokens, proposals['boxes']

    batch = torch.export.Dim('batch', min=1, max=8)
    with traceable(network), torch.no_grad():
        program = torch.export.export(Wrapper(), tuple(features), strict=False,
                                      dynamic_shapes=[{0: batch}] * 4)
    tokens, boxes = program.module()(*features)
    torch.testing.assert_close(tokens, expected_tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(boxes, expected['boxes'], rtol=0, atol=1e-6)
    one_tokens, _ = program.module()(*[f[:1] for f in features])  # another batch size
    torch.testing.assert_close(one_tokens, expected_tokens[:1], rtol=0, atol=1e-5)


def test_moe_routes_from_positions_equal_routes_from_the_index_tensor():
    torch.manual_seed(0)
    decoder = UnifiedDecoder(embed_dims=32, num_heads=4, ffn_dims=64, depth=2,
                             moe=dict(num_experts=4, top_k=2, layers='all'), dropout=0.0).eval()
    segments = [Segment(torch.randn(2, 3, 32), modality='image'),
                Segment(torch.randn(2, 4, 32), modality='text', target=True)]
    runs = [(segments[0], 1)] + [(s, s.tokens.shape[1]) for s in segments]
    attributes, positions, _ = decoder._attribute_table(runs, 'cpu')
    assert positions == [[0, 1, 2, 3], [4, 5, 6, 7]]  # <SPE> takes the first segment's
    index = torch.tensor([a for a, where in enumerate(positions) for _ in where])
    layer = decoder.layers[0]
    gates = layer.ffn_router(attributes)
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        by_positions = layer.fc1(x, gates, attribute_positions=positions)
        by_index = layer.fc1(x, gates, attribute_index=index)
    torch.testing.assert_close(by_positions, by_index, rtol=0, atol=0)
