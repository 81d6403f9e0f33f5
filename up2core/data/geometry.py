"""Targets that live in image coordinates, and how a geometric transform carries them.

mmdet's transforms move the targets they know (``gt_bboxes``, ``gt_masks``, ``gt_seg_map``)
with their image.  A task plugin may bring a target of its own that lives in the same
coordinates (a grounding task's ``phrase_boxes``, a keypoint task's ``gt_keypoints``): it
registers the result key in :data:`~up2core.registry.GEOMETRIC_TARGETS` with the class that
knows how to move it, and every UP2 geometric step (:class:`~up2core.data.transforms.
LimitImageSize`, :class:`~up2core.data.transforms.RandomFlip`) moves it with the image.

Built in, for the usual kinds of value:

``Boxes``   ``[N, 4]`` corners ``(x0, y0, x1, y1)`` in pixels (numpy, torch or mmdet's boxes);
``Points``  ``[..., 2]`` ``(x, y)`` in pixels (keypoints; extra columns such as a visibility
            flag ride along when the last axis is 3);
``Masks``   mmdet's ``BitmapMasks`` / ``PolygonMasks``, or an ``[N, H, W]`` / ``[H, W]`` array.

Examples:
    >>> from up2core.registry import GEOMETRIC_TARGETS
    >>> from up2core.data.geometry import Boxes
    >>> GEOMETRIC_TARGETS.register_module(name='phrase_boxes', module=Boxes)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from up2core.registry import GEOMETRIC_TARGETS


class GeometricTarget:
    """How one kind of target follows its image: subclasses implement both methods.

    ``scale_factor`` is ``(w_scale, h_scale)``; ``img_shape`` the ``(height, width)`` of the image
    after the step.
    """

    @staticmethod
    def resize(value, scale_factor: tuple[float, float], img_shape: tuple[int, int]):
        raise NotImplementedError

    @staticmethod
    def flip(value, img_shape: tuple[int, int], direction: str):
        raise NotImplementedError


def _as_array(value) -> tuple[np.ndarray, callable]:
    """A plain float array of ``value`` and the function that gives back its own type."""
    if hasattr(value, 'tensor'):  # mmdet's box structures
        cls = type(value)
        return value.tensor.numpy().astype(np.float32), lambda a: cls(a)
    if hasattr(value, 'numpy'):  # a torch tensor
        import torch

        dtype = value.dtype
        return value.numpy().astype(np.float32), lambda a: torch.as_tensor(a, dtype=dtype)
    array = np.asarray(value, dtype=np.float32)
    return array, lambda a: a


class Boxes(GeometricTarget):
    """``[N, 4]`` corner boxes: scaled, clipped to the image, mirrored."""

    @staticmethod
    def resize(value, scale_factor, img_shape):
        boxes, back = _as_array(value)
        boxes = boxes.reshape(-1, 4) * np.array([*scale_factor, *scale_factor], np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, img_shape[1])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, img_shape[0])
        return back(boxes)

    @staticmethod
    def flip(value, img_shape, direction):
        boxes, back = _as_array(value)
        boxes = boxes.reshape(-1, 4).copy()
        h, w = img_shape[:2]
        if direction in ('horizontal', 'diagonal'):
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if direction in ('vertical', 'diagonal'):
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
        return back(boxes)


class Points(GeometricTarget):
    """``[..., 2]`` (or ``[..., 3]`` with a flag) points: scaled and mirrored, never clipped
    (a keypoint outside the image is a fact about the object)."""

    @staticmethod
    def resize(value, scale_factor, img_shape):
        points, back = _as_array(value)
        points = points.copy()
        points[..., 0] *= scale_factor[0]
        points[..., 1] *= scale_factor[1]
        return back(points)

    @staticmethod
    def flip(value, img_shape, direction):
        points, back = _as_array(value)
        points = points.copy()
        h, w = img_shape[:2]
        if direction in ('horizontal', 'diagonal'):
            points[..., 0] = w - points[..., 0]
        if direction in ('vertical', 'diagonal'):
            points[..., 1] = h - points[..., 1]
        return back(points)


class Masks(GeometricTarget):
    """Instance masks: mmdet's mask structures, or arrays (nearest-neighbour resize)."""

    @staticmethod
    def resize(value, scale_factor, img_shape):
        if hasattr(value, 'resize') and hasattr(value, 'flip'):  # BitmapMasks / PolygonMasks
            return value.resize(tuple(img_shape[:2]))
        import mmcv

        array = np.asarray(value)
        size = (int(img_shape[1]), int(img_shape[0]))
        if array.ndim == 2:
            return mmcv.imresize(array, size, interpolation='nearest')
        return np.stack([mmcv.imresize(m, size, interpolation='nearest') for m in array]) \
            if len(array) else np.zeros((0, *img_shape[:2]), array.dtype)

    @staticmethod
    def flip(value, img_shape, direction):
        if hasattr(value, 'resize') and hasattr(value, 'flip'):
            return value.flip(direction)
        array = np.asarray(value)
        if direction in ('horizontal', 'diagonal'):
            array = array[..., ::-1]
        if direction in ('vertical', 'diagonal'):
            array = array[..., ::-1, :]
        return np.ascontiguousarray(array)


#: result keys mmdet's own transforms already move (UP2's steps delegate them to mmdet)
MMDET_KEYS = ('gt_bboxes', 'gt_masks', 'gt_seg_map', 'gt_ignore_flags')


_plugins_loaded = False


def registered_targets(results: dict) -> dict[str, type[GeometricTarget]]:
    """The plugin-registered geometric targets present in ``results``: ``{key: class}``."""
    global _plugins_loaded
    if not _plugins_loaded:  # plugins register their targets when they load
        GEOMETRIC_TARGETS.import_from_location()
        _plugins_loaded = True
    found = {}
    for key in results:
        if key in MMDET_KEYS or results[key] is None:
            continue
        cls = GEOMETRIC_TARGETS.module_dict.get(key)
        if cls is not None:
            found[key] = cls
    return found


def resize_targets(results: dict, scale_factor: tuple[float, float]) -> None:
    """Move every registered target of ``results`` by ``scale_factor`` (in place)."""
    for key, cls in registered_targets(results).items():
        results[key] = cls.resize(results[key], scale_factor, results['img_shape'][:2])


def flip_targets(results: dict, direction: str) -> None:
    """Mirror every registered target of ``results`` (in place)."""
    for key, cls in registered_targets(results).items():
        results[key] = cls.flip(results[key], results['img_shape'][:2], direction)


__all__ = ['GeometricTarget', 'Boxes', 'Points', 'Masks', 'registered_targets',
           'resize_targets', 'flip_targets']
