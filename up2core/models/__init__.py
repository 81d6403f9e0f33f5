"""The generalist model and its parts (importing this package registers them in MODELS)."""

from up2core.likelihood import UnifiedLikelihood
from up2core.models.decoder import DecoderOutput, Segment, UnifiedDecoder
from up2core.models.efficientnet_lite import EfficientNetLite0
from up2core.models.generalist import UP2Generalist
from up2core.models.image_encoder import AttentionPool, ImageEncoder, ImageTokens
from up2core.models.moe import AttributeRouter, MoELinear, attribute
from up2core.models.proposals import RegionProposalNetwork
from up2core.models.text_encoder import HFTextEncoder

__all__ = ['AttentionPool', 'AttributeRouter', 'DecoderOutput', 'EfficientNetLite0',
           'HFTextEncoder', 'ImageEncoder', 'ImageTokens', 'MoELinear', 'RegionProposalNetwork',
           'Segment', 'UP2Generalist', 'UnifiedDecoder', 'UnifiedLikelihood', 'attribute']
