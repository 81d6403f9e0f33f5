"""UP2 task plugin: image-text retrieval as likelihood over the other modality's items.

Both an image and a caption are encoded to their ``<SPE>`` features by the shared decoder; in
training each image's candidates are every caption of the (global, all-rank) batch and vice
versa, with a symmetric cross-entropy; evaluation ranks the whole split (R@1/5/10 both ways).

Registers: ``retrieval`` (TASKS, the :class:`RetrievalTask`) and ``RetrievalRecall`` (METRICS).
Its data comes from the core's ``CaptionDataset`` and ``SampleCaption`` (shared with captioning).
"""

from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.6'  # the UP2 plugin API this plugin is written for


@hookimpl
def up2_register(registry):
    from up2_retrieval.metric import RetrievalRecall
    from up2_retrieval.task import RetrievalTask

    registry.TASKS.register_module(name='retrieval', module=RetrievalTask)
    registry.METRICS.register_module(module=RetrievalRecall)
