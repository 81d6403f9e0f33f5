"""UP2 plugin: count the objects in an image.  See README.md for how to install and use it."""

from pathlib import Path

from up2core.plugin import hookimpl


@hookimpl
def up2_register(registry):
    from up2_example_counting.dataset import ShapesCountDataset
    from up2_example_counting.metric import CountAccuracy

    registry.DATASETS.register_module(module=ShapesCountDataset)
    registry.METRICS.register_module(module=CountAccuracy)


@hookimpl
def up2_config_dirs():
    return [str(Path(__file__).parent / 'configs')]
