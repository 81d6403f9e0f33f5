"""UP2 task plugin: count the objects in an image.  See README.md for how to install and use it.

Registers: ``counting`` (TASKS, :class:`~up2_example_counting.task.CountingTask`),
``CocoCountDataset`` (DATASETS), ``CountAccuracy`` (METRICS), and a config folder
(``counting_shapes_joint``: counting trained jointly with UP2's classification).
"""

from pathlib import Path

from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.5'  # the UP2 plugin API this plugin is written for


@hookimpl
def up2_register(registry):
    # Imports inside the hook: UP2 lists plugins (`up2 plugins`) without importing torch models.
    from up2_example_counting.dataset import CocoCountDataset
    from up2_example_counting.metric import CountAccuracy
    from up2_example_counting.task import CountingTask

    registry.TASKS.register_module(name='counting', module=CountingTask)
    registry.DATASETS.register_module(module=CocoCountDataset)
    registry.METRICS.register_module(module=CountAccuracy)


@hookimpl
def up2_config_dirs():
    return [str(Path(__file__).parent / 'configs')]
