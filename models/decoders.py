"""Decoders: multi-scale encoder features -> one feature map at the finest stride.

A decoder receives the encoder's channel counts (`encoder_channels`, finest first), never the
encoder itself or its name; it follows the features' own spatial sizes, so it needs no strides.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from onepass.models.tasks.base import conv_bn_relu


class FPNPyramid(nn.Module):
    """Feature Pyramid Network's levels (Lin et al. 2017): a top-down pathway with lateral 1x1 convs,
    each level smoothed by a 3x3 block. Output: one (B, channels, h_l, w_l) map per encoder level,
    finest first, at that level's own stride (MTI-Net's scales read them as they are)."""

    def __init__(self, encoder_channels: list[int], channels: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in encoder_channels)
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels) for _ in encoder_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        top_down = self.lateral[-1](features[-1])
        pyramid = [self.smooth[-1](top_down)]
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            pyramid.append(self.smooth[level](top_down))
        return pyramid[::-1]  # finest first, as the encoder's features


class FPNDecoder(FPNPyramid):
    """The pyramid merged as Panoptic-FPN does (Kirillov et al. 2019): each level upsampled to the
    finest stride and summed, then one fusing 3x3 block. Output: (B, channels, H / r0, W / r0),
    r0 = finest reduction."""

    def __init__(self, encoder_channels: list[int], channels: int = 64):
        super().__init__(encoder_channels, channels)
        self.fuse = conv_bn_relu(channels, channels)

    def forward(self, features: list[Tensor]) -> Tensor:
        finest, *coarser = super().forward(features)
        return self.fuse(merge_onto(finest, coarser[::-1]))  # coarsest added first; (B, channels, H / r0, W / r0)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return [self.fuse[0].weight]  # the conv weight, as GradNorm measures gradients at W


def upsample(x: Tensor, size: Sequence[int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *size), bilinear with half-pixel centres (the decoders' feature resize)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def merge_onto(base: Tensor, levels: Sequence[Tensor]) -> Tensor:
    """`base` plus each of `levels` upsampled to its size, added in the order given (Panoptic-FPN's merge)."""
    merged = base
    for level in levels:
        merged = merged + upsample(level, base.shape[-2:])
    return merged
