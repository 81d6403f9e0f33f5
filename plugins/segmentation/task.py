"""Instance segmentation: ``x`` = each region-proposal token, ``Y`` = the category names;
boxes and masks from the proposals."""

from __future__ import annotations

from up2core.regions import RegionTask


class SegmentationTask(RegionTask):
    """Instance segmentation (boxes + masks) over any list of category names.

    Trains the proposal network on boxes and masks (+ mask BCE and Dice) and the names'
    likelihood on the matched proposals; predicts ``pred_instances`` with ``bboxes``, ``scores``,
    ``labels`` and boolean ``masks`` of the original image's size.  Arguments: see
    :class:`~up2core.regions.RegionTask`.

    Examples:
        >>> dict(type='segmentation', class_names=['red circle', 'blue square'])
    """

    with_masks = True
    headline_metrics = ('segm_mAP', 'segm_mAP_50', 'segm_mAP_novel')
