"""Detection: ``x`` = each region-proposal token, ``Y`` = the category names; boxes from the
proposals."""

from __future__ import annotations

from up2core.regions import RegionTask


class DetectionTask(RegionTask):
    """Object detection (boxes) over any list of category names.

    Trains the proposal network on boxes only (objectness focal + L1 + GIoU) and the names'
    likelihood on the proposals matched to ground truth; predicts ``pred_instances`` with
    ``bboxes``, ``scores`` and ``labels`` in the original image's pixels.  Arguments: see
    :class:`~up2core.regions.RegionTask`.

    Examples:
        >>> dict(type='detection', class_names=['red circle', 'blue square'],
        ...      test_class_names=['red circle', 'blue square', 'red star'])
    """

    with_masks = False
    headline_metrics = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_novel')
