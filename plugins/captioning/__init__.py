"""UP2 task plugin: image captioning, each next token a likelihood over the encoded vocabulary.

The caption is fed twice after the image (a causal stream and a prediction stream, teacher
forcing); every prediction-stream output is scored against the vocabulary candidates, which the
text encoder and the shared decoder encode like any other target.  Decoding is greedy or beam
search over a key/value cache of the image and the generated tokens.

Registers: ``captioning`` (TASKS, the :class:`CaptioningTask`) and ``CaptionMetric`` (METRICS:
BLEU-1..4, CIDEr-D, ROUGE-L, optional METEOR via pycocoevalcap's scorers).  Its data comes from
the core's ``CaptionDataset`` and ``SampleCaption``.
"""

from up2core.plugin import hookimpl

UP2_PLUGIN_API = '1.6'  # the UP2 plugin API this plugin is written for


@hookimpl
def up2_register(registry):
    from up2_captioning.metric import CaptionMetric
    from up2_captioning.task import CaptioningTask

    registry.TASKS.register_module(name='captioning', module=CaptioningTask)
    registry.METRICS.register_module(module=CaptionMetric)
