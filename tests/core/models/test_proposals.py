"""The class-agnostic proposal network: shapes, Hungarian matching and losses on built cases."""

import copy

import pytest
import torch
from mmengine.structures import InstanceData

from up2core.models.proposals import RegionProposalNetwork, cxcywh_to_xyxy, xyxy_to_cxcywh

CANVAS = (64, 64)


@pytest.fixture(scope='module')
def rpn():
    torch.manual_seed(0)
    return RegionProposalNetwork(num_queries=6, num_proposal_tokens=4, num_encoder_layers=1,
                                 num_decoder_layers=2, ffn_dims=64, aux_loss=False)


def test_forward_gives_tokens_boxes_and_masks(rpn):
    feats = [torch.randn(2, 256, s, s) for s in (16, 8, 4, 2)]
    rpn.train()
    tokens, proposals = rpn(feats)
    assert tokens.shape == (2, 4, 256)
    assert proposals['boxes'].shape == (2, 4, 4) and proposals['masks'].shape == (2, 4, 16, 16)
    assert ((proposals['boxes'] > 0) & (proposals['boxes'] < 1)).all()
    # tokens are the best objectness first
    obj = proposals['objectness']
    assert (obj[:, :-1] >= obj[:, 1:]).all()
    full = proposals['layers'][-1]['objectness']
    assert torch.equal(full.gather(1, proposals['indices']), obj)


def _ground_truth():
    boxes = torch.tensor([[8., 12., 32., 40.], [36., 4., 60., 28.]])  # multiples of 4
    masks = torch.zeros(2, *CANVAS, dtype=torch.bool)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.long().tolist()):
        mask[y0:y1, x0:x1] = True
    return InstanceData(bboxes=boxes, masks=masks)


def _perfect_prediction(gt: InstanceData, slots=(1, 3), num_queries=6):
    """Queries `slots` predict the ground truth exactly and confidently; the rest are far-off
    boxes with near-zero objectness and empty masks."""
    scale = torch.tensor([CANVAS[1], CANVAS[0]] * 2, dtype=torch.float32)
    boxes = torch.tensor([[0.9, 0.9, 0.05, 0.05]]).repeat(num_queries, 1)
    objectness = torch.full((num_queries,), -30.0)
    masks = torch.full((num_queries, 16, 16), -30.0)
    for slot, box, mask in zip(slots, gt.bboxes, gt.masks):
        boxes[slot] = xyxy_to_cxcywh(box / scale)
        objectness[slot] = 30.0
        masks[slot] = torch.where(mask[::4, ::4], 30.0, -30.0)
    layer = dict(objectness=objectness[None], boxes=boxes[None], masks=masks[None])
    return dict(layers=[layer], indices=torch.arange(num_queries)[None], masks=masks[None],
                boxes=boxes[None], objectness=objectness[None])


def test_perfect_prediction_gives_near_zero_losses(rpn):
    gt = _ground_truth()
    losses, matches = rpn.loss(_perfect_prediction(gt), [gt], CANVAS, with_masks=True)
    assert set(losses) == {'loss_rpn_objectness', 'loss_rpn_l1', 'loss_rpn_giou',
                           'loss_rpn_mask', 'loss_rpn_dice'}
    for name, value in losses.items():
        assert float(value) < 1e-4, (name, float(value))
    assert matches[0].tolist() == [-1, 0, -1, 1, -1, -1]


def test_a_wrong_box_costs_and_the_loss_sees_it(rpn):
    gt = _ground_truth()
    proposals = _perfect_prediction(gt)
    proposals['layers'][0]['boxes'][0, 1, :2] += 0.1  # move the first box
    losses, _ = rpn.loss(proposals, [gt], CANVAS, with_masks=True)
    assert losses['loss_rpn_l1'] > 0.1 and losses['loss_rpn_giou'] > 0.1
    assert losses['loss_rpn_mask'] < 1e-4  # masks untouched


def test_permuting_the_ground_truth_leaves_the_loss_unchanged(rpn):
    torch.manual_seed(1)
    gt = _ground_truth()
    proposals = _perfect_prediction(gt)
    layer = proposals['layers'][0]
    layer['boxes'] = (layer['boxes'] + 0.05 * torch.randn_like(layer['boxes'])).clamp(0.01, 0.99)
    layer['objectness'] = torch.randn_like(layer['objectness'])
    layer['masks'] = torch.randn_like(layer['masks'])
    losses, matches = rpn.loss(proposals, [gt], CANVAS, with_masks=True)
    swapped = InstanceData(bboxes=gt.bboxes[[1, 0]], masks=gt.masks[[1, 0]])
    losses2, matches2 = rpn.loss(proposals, [swapped], CANVAS, with_masks=True)
    for name in losses:
        assert torch.allclose(losses[name], losses2[name], atol=1e-6), name
    # the same queries are matched to the same objects, now under swapped indices
    relabel = torch.tensor([1, 0])
    expected = torch.where(matches[0] >= 0, relabel[matches[0].clamp(min=0)], -1)
    assert torch.equal(matches2[0], expected)


def test_an_image_without_objects_trains_objectness_only(rpn):
    empty = InstanceData(bboxes=torch.zeros(0, 4), masks=torch.zeros(0, *CANVAS, dtype=torch.bool))
    proposals = _perfect_prediction(_ground_truth())
    losses, matches = rpn.loss(proposals, [empty], CANVAS, with_masks=True)
    assert (matches[0] == -1).all()
    assert float(losses['loss_rpn_objectness']) > 1.0  # two confident false positives
    assert float(losses['loss_rpn_l1']) == 0.0 and float(losses['loss_rpn_mask']) == 0.0


def test_box_format_helpers_round_trip():
    boxes = torch.rand(5, 4)
    assert torch.allclose(xyxy_to_cxcywh(cxcywh_to_xyxy(boxes)), boxes, atol=1e-6)


def test_only_width_256_is_accepted():
    with pytest.raises(ValueError, match='embed_dims=256'):
        RegionProposalNetwork(embed_dims=128)


def test_a_separable_pixel_decoder_is_lighter_and_trains_the_masks():
    kwargs = dict(num_queries=6, num_proposal_tokens=4, num_encoder_layers=1,
                  num_decoder_layers=2, ffn_dims=64, aux_loss=False)
    torch.manual_seed(0)
    full = RegionProposalNetwork(**kwargs)
    light = RegionProposalNetwork(pixel_decoder='separable', **kwargs)
    weights = {name: sum(p.numel() for p in net.pixel_decoder.parameters() if p.dim() == 4)
               for name, net in (('full', full), ('light', light))}
    assert weights['light'] * 4 < weights['full']  # 3x3 256->256 (+1x1) vs depthwise + 2 1x1
    light.train()
    _, proposals = light(_features())
    loss = sum(light.loss(proposals, _targets(), CANVAS)[0].values())
    loss.backward()
    assert proposals['masks'].shape == (2, 4, 16, 16)
    assert light.pixel_decoder[0].weight.grad.abs().sum() > 0  # the masks reach it
    from up2core.config import ConfigError

    with pytest.raises(ConfigError, match="pixel_decoder must be 'conv' or 'separable'"):
        RegionProposalNetwork(pixel_decoder='deformable', **kwargs)


@pytest.mark.parametrize('pixel_decoder', ['conv', 'separable'])
def test_eval_folds_the_last_pixel_convolution_into_the_queries_exactly(pixel_decoder):
    torch.manual_seed(0)
    net = RegionProposalNetwork(num_queries=6, num_proposal_tokens=4, num_encoder_layers=1,
                                num_decoder_layers=2, ffn_dims=64, aux_loss=False,
                                pixel_decoder=pixel_decoder).eval()
    torch.nn.init.normal_(net.pixel_decoder[-1].bias)  # the bias term must survive the fold
    plain = copy.deepcopy(net)  # the training-time order: the whole decoder, then dot products
    plain._pixel_map = lambda first: plain.pixel_decoder(first)
    plain._masks = lambda q, p: torch.einsum('bqc,bchw->bqhw', plain.mask_embed(q), p)
    feats = _features()
    calls = []
    net.pixel_decoder[-1].register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        tokens, proposals = net(feats)
        ref_tokens, ref = plain(feats)
    assert not calls  # folded: the 1 x 1 convolution never ran over the map
    assert proposals['masks'].shape == ref['masks'].shape == (2, 4, 16, 16)
    assert ref['masks'].abs().mean() > 0.1
    assert torch.allclose(proposals['masks'], ref['masks'], atol=1e-4)
    assert torch.allclose(tokens, ref_tokens, atol=1e-4)


def test_sine_positions_are_computed_once_per_map_size():
    torch.manual_seed(0)
    net = RegionProposalNetwork(num_queries=6, num_proposal_tokens=4, num_encoder_layers=1,
                                num_decoder_layers=2, ffn_dims=64, aux_loss=False).eval()
    encode, calls = net.positional_encoding.forward, []
    net.positional_encoding.forward = lambda *a, **k: calls.append(1) or encode(*a, **k)
    with torch.no_grad():
        first = net(_features())[0]
        assert len(calls) == 3  # the three encoder levels
        again = net(_features())[0]
        assert len(calls) == 3 and torch.equal(first, again)  # cached, the same numbers
        net([torch.randn(2, 256, s, s) for s in (20, 10, 5, 3)])
        assert len(calls) == 6  # another image size: its own encodings
        feat = torch.randn(1, 256, 8, 4)
        assert torch.equal(net._sine_positions(feat), encode(None, input=feat))


# ---------------------------------------------------------------- denoising (DINO's CDN)

def _denoising_rpn(box_noise_scale=1.0, aux_loss=True):
    torch.manual_seed(0)
    rpn = RegionProposalNetwork(num_queries=6, num_proposal_tokens=4, num_encoder_layers=1,
                                num_decoder_layers=2, ffn_dims=64, aux_loss=aux_loss,
                                denoising=dict(num_dn_queries=8,
                                               box_noise_scale=box_noise_scale))
    rpn.init_weights()
    return rpn


def _features():
    torch.manual_seed(2)
    return [torch.randn(2, 256, s, s) for s in (16, 8, 4, 2)]


def _targets():
    gt = _ground_truth()
    one = InstanceData(bboxes=gt.bboxes[:1], masks=gt.masks[:1])
    return [gt, one]  # 2 and 1 objects: the second image's slots are partly padding


def test_denoising_adds_box_losses_that_train_the_branches():
    rpn = _denoising_rpn()
    rpn.train()
    _, proposals = rpn(_features())
    losses, _ = rpn.loss(proposals, _targets(), (64, 64), with_masks=True)
    dn = {k for k in losses if '_dn' in k}
    assert dn == {f'loss_rpn_{p}{t}' for p in ('dn.', 'dn_d0.')
                  for t in ('objectness', 'l1', 'giou')}
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in dn)
    sum(losses[k] for k in dn).backward()
    # the denoising queries' content embedding and the shared box branches learn from them
    assert rpn.denoising.label_embedding.weight.grad.abs().sum() > 0
    assert rpn.cls_branches[1].weight.grad.abs().sum() > 0


def test_noiseless_denoising_queries_give_back_their_own_boxes():
    # box branches start at zero, so with no noise each positive query's box is its reference:
    # exactly the ground truth it was made from, if the loss pairs queries and objects right
    rpn = _denoising_rpn(box_noise_scale=1e-6)  # mmdet needs > 0: as good as none here
    rpn.train()
    _, proposals = rpn(_features())
    losses, _ = rpn.loss(proposals, _targets(), (64, 64), with_masks=False)
    for name in ('loss_rpn_dn.l1', 'loss_rpn_dn.giou', 'loss_rpn_dn_d0.l1'):
        assert float(losses[name]) < 1e-4, (name, float(losses[name]))
    # a wrong slot (another image's, a padding slot: a zero box at the centre) would cost
    assert float(losses['loss_rpn_dn.objectness']) > 0  # untrained objectness still pays


def test_denoising_changes_nothing_outside_training():
    rpn = _denoising_rpn()
    rpn.eval()
    with torch.no_grad():
        tokens, proposals = rpn(_features())
        rpn_plain = rpn.denoising
        rpn.denoising = None
        tokens_plain, _ = rpn(_features())
        rpn.denoising = rpn_plain
    assert 'denoising' not in proposals
    assert torch.equal(tokens, tokens_plain)


def test_denoising_without_objects_is_zero_and_in_the_graph():
    rpn = _denoising_rpn()
    rpn.train()
    _, proposals = rpn(_features())
    empty = InstanceData(bboxes=torch.zeros(0, 4), masks=torch.zeros(0, 64, 64, dtype=torch.bool))
    losses, _ = rpn.loss(proposals, [empty, empty], (64, 64), with_masks=True)
    assert float(losses['loss_rpn_dn.l1']) == 0.0 and losses['loss_rpn_dn.l1'].requires_grad


def test_an_unknown_denoising_option_is_named():
    from up2core.config import ConfigError

    with pytest.raises(ConfigError, match="unknown denoising option.*'groups'"):
        RegionProposalNetwork(num_queries=6, denoising=dict(groups=3))
    with pytest.raises(ConfigError, match='denoising must be a dict'):
        RegionProposalNetwork(num_queries=6, denoising='yes')
