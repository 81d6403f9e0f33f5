import pytest
import torch

from up2core.models.decoder import Segment, UnifiedDecoder, build_attention_mask


def _decoder(**kwargs):
    torch.manual_seed(0)
    return UnifiedDecoder(embed_dims=32, num_heads=4, ffn_dims=64, depth=2, dropout=0.0,
                          **kwargs).eval()


def test_shapes_and_spe_output():
    dec = _decoder(input_dims=dict(text=48))
    out = dec([Segment(torch.randn(2, 5, 32), modality='image'),
               Segment(torch.randn(2, 7, 48), modality='text', source='text')])
    assert out.spe.shape == (2, 32) and [s.shape for s in out.segments] == [(2, 5, 32),
                                                                           (2, 7, 32)]
    assert out.hidden.shape == (2, 13, 32)


def test_mask_rules():
    segs = [Segment(torch.zeros(1, 2, 4)), Segment(torch.zeros(1, 3, 4), modality='text',
                                                   causal=True)]
    mask = build_attention_mask(segs, 1, 'cpu')[0]
    # <SPE> and the image see each other but not the causal text
    assert mask[:3, :3].all() and not mask[:3, 3:].any()
    # causal text: sees all earlier segments, and itself only up to its own position
    assert mask[3:, :3].all()
    assert torch.equal(mask[3:, 3:], torch.tril(torch.ones(3, 3, dtype=torch.bool)))


def test_a_causal_position_cannot_see_the_future():
    dec = _decoder()
    image = torch.randn(1, 4, 32)
    text = torch.randn(1, 6, 32)
    base = dec([Segment(image), Segment(text, modality='text', causal=True)]).segments[1]
    changed = text.clone()
    changed[:, 4:] = torch.randn(1, 2, 32)  # alter the last two tokens
    after = dec([Segment(image), Segment(changed, modality='text', causal=True)]).segments[1]
    torch.testing.assert_close(after[:, :4], base[:, :4])  # the past does not change
    assert not torch.allclose(after[:, 4:], base[:, 4:])


def test_bidirectional_positions_do_see_every_token():
    dec = _decoder()
    text = torch.randn(1, 6, 32)
    base = dec([Segment(text, modality='text')]).segments[0]
    changed = text.clone()
    changed[:, 5] = torch.randn(32)
    after = dec([Segment(changed, modality='text')]).segments[0]
    assert not torch.allclose(after[:, 0], base[:, 0])


def test_padding_is_invisible():
    dec = _decoder()
    tokens = torch.randn(1, 6, 32)
    valid = torch.tensor([[True] * 4 + [False] * 2])
    a = dec([Segment(tokens, valid, modality='text')]).spe
    tokens[:, 4:] = 100 * torch.randn(1, 2, 32)
    b = dec([Segment(tokens, valid, modality='text')]).spe
    torch.testing.assert_close(a, b)


def test_moe_layers_and_width_errors():
    dec = _decoder(moe=dict(num_experts=4, top_k=2, layers='every_other', attention=True))
    assert dec.layers[0].fc1.num_experts == 1 and dec.layers[1].fc1.num_experts == 4
    assert dec.layers[1].qkv.num_experts == 4
    out = dec([Segment(torch.randn(2, 3, 32)), Segment(torch.randn(2, 2, 32), modality='text',
                                                       target=True)])
    assert torch.isfinite(out.hidden).all()
    with pytest.raises(ValueError, match='width 7'):
        dec([Segment(torch.randn(1, 2, 7))])
    with pytest.raises(KeyError, match="no input projection 'text'"):
        dec([Segment(torch.randn(1, 2, 7), source='text')])


@pytest.mark.parametrize('moe', [None, dict(num_experts=4, top_k=2, layers='all')])
def test_extend_equals_the_full_forward(moe):
    """Decoding a causal segment one token at a time from a cache gives the outputs of one full
    pass (with padding in the prefix, and MoE weights merged once and reused)."""
    dec = _decoder(moe=moe)
    image = torch.randn(2, 5, 32)
    image_valid = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    text = torch.randn(2, 4, 32)
    full = dec([Segment(image, image_valid), Segment(text, modality='text', causal=True,
                                                      generative=True)]).segments[1]
    cache = dec([Segment(image, image_valid)], return_cache=True).cache
    assert len(cache) == 6
    steps = []
    for t in range(4):
        (out,), cache = dec.extend(cache, [Segment(text[:, t:t + 1], modality='text', causal=True,
                                                   generative=True)])
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)
    assert len(cache) == 10
    if moe:  # one merged weight set per (linear, attribute) pair, reused by later steps
        weights = [key for key in cache.merged if key[0] != 'gates']
        assert len(weights) == 2 * 4 * 2


def test_extend_keeps_only_the_first_positions_and_selects_rows():
    dec = _decoder()
    cache = dec([Segment(torch.randn(2, 3, 32))], return_cache=True).cache
    outs, extended = dec.extend(cache, [Segment(torch.randn(2, 1, 32), modality='text'),
                                        Segment(torch.randn(2, 1, 32), modality='text')], keep=1)
    assert [o.shape for o in outs] == [(2, 1, 32), (2, 1, 32)] and len(extended) == 5
    flipped = extended.select(torch.tensor([1, 0, 0]))
    assert flipped.keys[0].shape[0] == 3
    torch.testing.assert_close(flipped.keys[1][0], extended.keys[1][1])


def test_a_beam_reorder_moves_only_the_positions_after_the_copy():
    """Rows copied from one source (beams of an image) are reordered in place from the length
    at the copy on; the result equals gathering every position, and later steps still match."""
    dec = _decoder()
    prefix = dec([Segment(torch.randn(2, 3, 32))], return_cache=True).cache
    beams = prefix.select(torch.tensor([0, 0, 1, 1]))  # a copy: rows 0,0,1,1 of the prefix
    assert beams.split == 4 and beams.rows.tolist() == [0, 0, 1, 1]
    (_,), beams = dec.extend(beams, [Segment(torch.randn(4, 1, 32), modality='text',
                                             causal=True)])
    expected = [k.index_select(0, torch.tensor([1, 0, 3, 2])).clone() for k in beams.keys]
    reordered = beams.select(torch.tensor([1, 0, 3, 2]))
    assert reordered.key_buffers[0] is beams.key_buffers[0]  # in place, no copy
    for got, want in zip(reordered.keys, expected):
        torch.testing.assert_close(got, want)
    # a reorder across sources (row 0 takes image 1's beam) copies every position
    crossed = reordered.select(torch.tensor([2, 0, 3, 2]))
    assert crossed.key_buffers[0] is not reordered.key_buffers[0]
    torch.testing.assert_close(crossed.keys[0][0], reordered.keys[0][2])
    # the buffers grow past their capacity without losing what they hold
    for _ in range(40):
        (_,), crossed = dec.extend(crossed, [Segment(torch.randn(4, 1, 32), modality='text',
                                                     causal=True)])
    assert len(crossed) == 45 and crossed.keys[0].shape[2] == 45
    torch.testing.assert_close(crossed.keys[0][0, :, :5], reordered.keys[0][2, :, :5])
