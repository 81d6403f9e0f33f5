"""UP2 task plugin: object detection as likelihood over category names.

Each region-proposal token's output of the shared decoder is scored against the category names
(text encoder + shared decoder); boxes come from the proposals.  The category list is a config
and an inference argument (``classes=``), so names never trained on can be detected.  Data:
COCO instances through mmdet (the core's ``CocoInstances``); metric: COCO box AP through mmdet's
``CocoMetric`` (the core's ``GroupedCocoMetric`` adds AP per group of names).

Registers: ``detection`` (TASKS, the :class:`DetectionTask`).
"""

from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.6'  # the UP2 plugin API this plugin is written for


@hookimpl
def up2_register(registry):
    from up2_detection.task import DetectionTask

    registry.TASKS.register_module(name='detection', module=DetectionTask)
