"""Runtime pieces UP2 adds to MMEngine's Runner (loops, hooks, checkpoint compatibility, a
short console)."""

from up2core.engine.anchoring import AnchorHook
from up2core.engine.base_checkpoint import BaseCheckpointHook
from up2core.engine.checkpoint import allow_mmengine_checkpoints
from up2core.engine.console import ConsoleProgressHook
from up2core.engine.data_card import DataCardHook
from up2core.engine.distilling import DistillationHook
from up2core.engine.hooks import AtomicCheckpointHook, MetricsFileHook
from up2core.engine.loops import MultiTaskTestLoop, MultiTaskValLoop, UnmixedTrainLoop
from up2core.engine.results import RunResultsHook
from up2core.engine.runner import UP2Runner
from up2core.engine.sharding import FullyShardStrategy

# MMEngine 0.10 checkpoints must load under torch >= 2.6's weights_only default wherever UP2's
# registries are in use (this package is imported when they are first searched).
allow_mmengine_checkpoints()

__all__ = ['AnchorHook', 'AtomicCheckpointHook', 'BaseCheckpointHook', 'ConsoleProgressHook',
           'DataCardHook', 'DistillationHook', 'FullyShardStrategy', 'MetricsFileHook', 'MultiTaskTestLoop',
           'MultiTaskValLoop', 'RunResultsHook', 'UP2Runner', 'UnmixedTrainLoop',
           'allow_mmengine_checkpoints']
