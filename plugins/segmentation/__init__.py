"""UP2 task plugin: instance segmentation as likelihood over category names.

Like detection, each region-proposal token is scored against the category names; each instance
also takes its proposal's mask (the proposal network's mask branch, upsampled to the image).
Data: COCO instances with masks through mmdet (the core's ``CocoInstances``); metric: COCO mask
AP through mmdet's ``CocoMetric`` (``metric='segm'``; the core's ``GroupedCocoMetric`` adds AP
per group of names).  Independent of the detection plugin: it runs with that one disabled.

Registers: ``segmentation`` (TASKS, the :class:`SegmentationTask`).
"""

from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.6'  # the UP2 plugin API this plugin is written for


@hookimpl
def up2_register(registry):
    from up2_segmentation.task import SegmentationTask

    registry.TASKS.register_module(name='segmentation', module=SegmentationTask)
