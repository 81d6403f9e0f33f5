"""What the model hands a region-level task: :class:`Regions`, and the mapping of its boxes and
masks from the network input back to the original image.

A structure of the model's output, as detectron2 keeps ``structures/`` apart from the tasks:
``UP2Generalist.regions`` builds it (so the models import this module, never the task
contract above them), and :mod:`up2core.regions`' task bases use it; plugins import both from
:mod:`up2core.regions`, as since plugin API 1.2.

**Box format.** Every box here is ``(x0, y0, x1, y1)`` in pixels, corners, floats: of the network
input (the padded batch tensor, ``canvas = (H, W)``) until :func:`boxes_to_original` maps it to
the original image (``sample.metainfo``: ``img_shape``, ``scale_factor``, ``flip``,
``ori_shape``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def _as_tensor(boxes) -> Tensor:
    """mmdet's box structures (``HorizontalBoxes``) or plain tensors -> a tensor."""
    return boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(boxes)


def boxes_to_original(boxes: Tensor, meta: dict) -> Tensor:
    """Boxes (x0, y0, x1, y1) on the network's input back to the original image: clip to the
    resized image, undo the pipeline's flip, undo its resize (``scale_factor``), clip again."""
    h, w = meta['img_shape'][:2]
    boxes = boxes.clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    if meta.get('flip', False):
        direction = meta.get('flip_direction', 'horizontal')
        if direction in ('horizontal', 'diagonal'):
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if direction in ('vertical', 'diagonal'):
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
    if 'scale_factor' in meta:
        sx, sy = meta['scale_factor'][:2]
        boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
    oh, ow = meta.get('ori_shape', (h, w))[:2]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, ow)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, oh)
    return boxes


def masks_to_original(mask_logits: Tensor, canvas: tuple[int, int], meta: dict,
                      threshold: float = 0.5, mask_size: tuple[int, int] | None = None
                      ) -> Tensor:
    """Mask logits [N, h, w] over the padded canvas -> bool masks [N, H, W] of the original
    image: upsample to the canvas, crop the resized image, undo the flip, resize to the original
    size, threshold the probability.

    ``mask_size``: the ``(h, w)`` of the image's own part of the logits' grid, in a batch of
    images of several sizes; that part is upsampled onto the image alone, exactly as when the
    image is predicted alone (where its grid is the whole canvas)."""
    if len(mask_logits) == 0:
        oh, ow = meta.get('ori_shape', meta['img_shape'])[:2]
        return torch.zeros(0, oh, ow, dtype=torch.bool)
    h, w = meta['img_shape'][:2]
    if mask_size is not None:
        mh, mw = (int(v) for v in mask_size)
        masks = F.interpolate(mask_logits[None, :, :mh, :mw].float(), size=(int(h), int(w)),
                              mode='bilinear', align_corners=False)[0]
    else:
        masks = F.interpolate(mask_logits[None].float(), size=canvas, mode='bilinear',
                              align_corners=False)[0]
        masks = masks[:, :h, :w]
    if meta.get('flip', False):
        direction = meta.get('flip_direction', 'horizontal')
        if direction in ('horizontal', 'diagonal'):
            masks = masks.flip(-1)
        if direction in ('vertical', 'diagonal'):
            masks = masks.flip(-2)
    oh, ow = meta.get('ori_shape', (h, w))[:2]
    if (oh, ow) != (h, w):
        masks = F.interpolate(masks[None], size=(oh, ow), mode='bilinear',
                              align_corners=False)[0]
    return masks.sigmoid() > threshold


@dataclass
class Regions:
    """The region proposals of a batch of images, as region-level tasks use them.

    Attributes:
        features: ``[B, K, C]`` outputs of the shared decoder at the proposal tokens.
        boxes: ``[B, K, 4]`` ``(x0, y0, x1, y1)`` in pixels of the network input.
        objectness: ``[B, K]`` logits: how likely each proposal is an object at all.
        mask_logits: ``[B, K, h, w]`` over the canvas at low resolution, or None.
        canvas: ``(H, W)`` of the batch tensor (the padded network input).
        mask_sizes: see the attribute.
    """

    features: Tensor
    boxes: Tensor
    objectness: Tensor
    mask_logits: Tensor | None
    canvas: tuple[int, int]
    #: ``[B, 2]`` ``(h, w)`` of each image's part of the mask grid, in a batch of images of
    #: several sizes (None: every image fills the canvas)
    mask_sizes: Tensor | None = None

    def boxes_on_original(self, index: int, meta: dict, which: Tensor | None = None) -> Tensor:
        """Boxes of image ``index`` (all, or the proposals ``which`` selects) in pixels of its
        original image (``meta`` is the sample's metainfo)."""
        boxes = self.boxes[index] if which is None else self.boxes[index][which]
        return boxes_to_original(boxes, meta)

    def masks_on_original(self, index: int, meta: dict, which: Tensor | None = None,
                          threshold: float = 0.5) -> Tensor:
        """Bool masks of image ``index`` (all, or ``which``) at its original size."""
        if self.mask_logits is None:
            raise ValueError('these proposals have no masks (the proposal generator predicts '
                             'none)')
        logits = self.mask_logits[index] if which is None else self.mask_logits[index][which]
        size = self.mask_sizes[index].tolist() if self.mask_sizes is not None else None
        return masks_to_original(logits, self.canvas, meta, threshold, mask_size=size)


__all__ = ['Regions', 'boxes_to_original', 'masks_to_original']
