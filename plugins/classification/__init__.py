"""UP2 task plugin: image classification as likelihood over class names.

``x`` is the image (global tokens through the shared decoder); the candidate set ``Y`` is every
class name, written into a prompt, encoded by the text encoder and the same decoder.  The
prediction is ``argmax_y P(x, y)``; the metric is top-1 / top-5 accuracy.

Registers: ``classification`` (TASKS, the :class:`ClassificationTask`); ``ImageListDataset``, ``ImageFolderDataset``
(DATASETS); ``TopKAccuracy`` (METRICS).
"""

from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.6'  # the UP2 plugin API this plugin is written for


@hookimpl
def up2_register(registry):
    from up2_classification.dataset import ImageFolderDataset, ImageListDataset
    from up2_classification.metric import TopKAccuracy
    from up2_classification.task import ClassificationTask

    registry.TASKS.register_module(name='classification', module=ClassificationTask)
    registry.DATASETS.register_module(module=ImageListDataset)
    registry.DATASETS.register_module(module=ImageFolderDataset)
    registry.METRICS.register_module(module=TopKAccuracy)
