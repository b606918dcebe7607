"""Decoders: multi-scale encoder features -> one feature map at the finest stride.

A decoder receives the encoder's channel counts (`encoder_channels`, finest first), never the
encoder itself or its name; it follows the features' own spatial sizes, so it needs no strides.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from onepass.models.tasks.base import conv_bn_relu


class FPNDecoder(nn.Module):
    """Feature Pyramid Network (Lin et al. 2017) with Panoptic-FPN's merge (Kirillov et al. 2019):
    top-down pathway with lateral 1x1 convs, each level smoothed, upsampled to the finest stride and
    summed, then one fusing 3x3 block. Output: (B, channels, H / r0, W / r0), r0 = finest reduction."""

    def __init__(self, encoder_channels: list[int], channels: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in encoder_channels)
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels) for _ in encoder_channels)
        self.fuse = conv_bn_relu(channels, channels)

    def forward(self, features: list[Tensor]) -> Tensor:
        top_down = self.lateral[-1](features[-1])
        pyramid = [self.smooth[-1](top_down)]
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            pyramid.append(self.smooth[level](top_down))
        finest = pyramid[-1].shape[-2:]
        merged = pyramid[-1]
        for level in pyramid[:-1]:
            merged = merged + F.interpolate(level, size=finest, mode="bilinear", align_corners=False)
        return self.fuse(merged)  # (B, channels, H / r0, W / r0)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return [self.fuse[0].weight]  # the conv weight, as GradNorm measures gradients at W
