"""Encoders: any timm backbone that supports `features_only=True`."""

from __future__ import annotations

import timm
from torch import Tensor, nn

from onepass.errors import ConfigError

MIN_REDUCTION = 4  # decoders start at stride 4; a stride-2 map costs memory and adds little


class Encoder(nn.Module):
    """timm multi-scale features at strides 4, 8, 16, 32 (or whatever the backbone offers >= 4).

    Consumers read `channels` and `reductions`, never the backbone's name.
    """

    def __init__(self, name: str, pretrained: bool = False):
        super().__init__()
        if not timm.is_model(name):
            close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
            raise ConfigError(f"unknown timm encoder {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
        try:
            self.backbone = timm.create_model(name, features_only=True, pretrained=pretrained)
        except RuntimeError as error:
            raise ConfigError(f"encoder {name!r} cannot produce multi-scale features: {error}") from None
        info = self.backbone.feature_info
        self._keep = [i for i, r in enumerate(info.reduction()) if r >= MIN_REDUCTION]
        self.channels = [info.channels()[i] for i in self._keep]
        self.reductions = [info.reduction()[i] for i in self._keep]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.backbone(x)
        return [features[i] for i in self._keep]
