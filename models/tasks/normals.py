"""Surface normals: unit vectors in camera space (x right, y up, z toward the camera).

A zero vector in a target means "no normal here". Every output is a unit vector: where the head's
raw vector has no direction (zero, or lost to int8 rounding), the graph returns `FALLBACK_NORMAL`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from onepass.data.codecs import NormalsPngCodec
from onepass.models.tasks._resize import resize_linear
from onepass.models.tasks.base import MapTask, OutputAgreement, OutputSpec, masked_mean, register_task
from onepass.models.tasks.legends import KeyPicture

ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)  # degrees, the customary NYUv2 thresholds
# The in-graph normalisation's contract: a raw vector whose largest component is at most NORM_EPS
# has no direction we can trust (int8 rounds a few pixels' three channels to exactly zero), and
# comes out as FALLBACK_NORMAL, facing the camera, the most common normal of a frontal scene.
NORM_EPS = 1e-6  # representable in fp16 too (its smallest subnormal is 6e-8)
FALLBACK_NORMAL = (0.0, 0.0, 1.0)


def unit_normals(raw: Tensor) -> Tensor:
    """Raw (B, 3, H, W) -> unit vectors (B, H, W, 3) in any precision, `FALLBACK_NORMAL` where the
    raw vector is (nearly) zero or not a number.

    The vector is divided by its largest component before the length is taken, so the squares lie
    in [0, 1]: they neither overflow nor vanish in fp16, and the length is in [1, sqrt(3)].
    """
    largest = raw.abs().amax(dim=1, keepdim=True)  # (B, 1, H, W)
    directed = largest > NORM_EPS  # False for zero and NaN vectors
    scaled = raw / torch.where(directed, largest, torch.ones_like(largest))
    length = torch.linalg.vector_norm(scaled, dim=1, keepdim=True).clamp_min(1.0)  # >= 1 wherever directed
    fallback = torch.tensor(FALLBACK_NORMAL, dtype=raw.dtype, device=raw.device).view(1, 3, 1, 1)
    return torch.where(directed, scaled / length, fallback).permute(0, 2, 3, 1)


@register_task
@dataclass(frozen=True)
class NormalsTask(MapTask):
    name: ClassVar[str] = "normals"
    codec: ClassVar = NormalsPngCodec()
    fill_value: ClassVar[float] = 0.0

    @property
    def out_channels(self) -> int:
        return 3

    def target(self, label: np.ndarray | None, size: tuple[int, int], source: str) -> np.ndarray:
        if label is None:
            return np.zeros((*size, 3), np.float32)
        if label.ndim != 3 or label.shape[2] != 3:
            raise ValueError(f"{source}: normals must have 3 channels, got shape {label.shape}")
        return label.astype(np.float32, copy=False)

    def flip_target(self, target: np.ndarray) -> np.ndarray:
        flipped = target[:, ::-1].copy()
        flipped[..., 0] *= -1  # mirroring the image mirrors the x axis of every normal
        return flipped

    @staticmethod
    def unit(raw: Tensor) -> Tensor:
        """Raw (B, 3, H, W) -> unit vectors (B, H, W, 3)."""
        return F.normalize(raw.float(), dim=1).permute(0, 2, 3, 1)

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        # target (B, H, W, 3); valid where it is a non-zero vector
        cosine = (self.unit(raw) * target).sum(dim=-1)  # (B, H, W)
        return masked_mean(1.0 - cosine, target.abs().sum(dim=-1) > 0)

    def new_metric(self) -> AngleErrors:
        return AngleErrors()

    def constant_output(self, targets: Tensor) -> Tensor:
        valid = targets[targets.abs().sum(dim=-1) > 0]  # (P, 3)
        # the most common normal: the mode of the normals quantised to about 3 degrees
        values, frequency = torch.unique((valid * 20).round(), dim=0, return_counts=True)
        return values[frequency.argmax()] / 20.0

    def metric_directions(self) -> dict[str, bool]:
        return {
            "mean_angle": False,
            "median_angle": False,
            **{f"within_{t:g}": True for t in ANGLE_THRESHOLDS},
        }

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.name: unit_normals(raw.float())}

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return (OutputSpec(self.name, "float32", ("N", "H", "W", 3)),)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        cosine = np.clip((expected[self.name] * actual[self.name]).sum(-1), -1.0, 1.0)
        angle = float(np.degrees(np.arccos(cosine)).max())
        return [OutputAgreement(self.name, "max angle error °", angle, 0.1, False)]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        # Channel by channel on contiguous planes, in place: three times faster than one einsum over
        # (H, W, 3) at 480x640, where this step otherwise costs more than the model.
        x, y, z = (resize_linear(np.ascontiguousarray(outputs[self.name][..., c]), size) for c in range(3))
        scale = x * x  # bilinear blending shortens the vectors: bring them back to unit length
        scale += y * y
        scale += z * z
        np.sqrt(np.maximum(scale, 1e-12, out=scale), out=scale)
        np.divide(1.0, scale, out=scale)
        normals = np.empty((*size, 3), np.float32)
        for c, plane in enumerate((x, y, z)):
            np.multiply(plane, scale, out=normals[..., c])
        return normals

    def visualize(self, result: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        return np.clip(np.round((result + 1.0) * 127.5), 0, 255).astype(np.uint8)

    def legend(self, result: np.ndarray) -> KeyPicture:
        """A sphere facing the camera, coloured like `visualize`: every direction a surface can face."""
        return KeyPicture("surface facing", self._sphere(), "red: right, green: up, blue: toward the camera")

    def _sphere(self, size: int = 48) -> np.ndarray:
        """(size, size, 4) RGBA: the visible half of a unit sphere's normals, transparent around it."""
        c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        x, y = np.meshgrid(c, -c)  # image rows go down, camera y goes up
        radius = np.sqrt(x * x + y * y)
        z = np.sqrt(np.clip(1.0 - radius * radius, 0.0, None))
        rgb = self.visualize(np.stack([x, y, z], axis=-1) / np.maximum(radius, 1.0)[..., None])
        coverage = np.clip((1.0 - radius) * size / 2.0 + 0.5, 0.0, 1.0)  # one pixel of anti-aliased edge
        return np.dstack([rgb, np.round(coverage * 255).astype(np.uint8)])


class AngleErrors:
    """Angle errors in degrees, pooled over the set.

    The median is read from a 0.01-degree histogram (exact to that resolution) so that memory
    stays constant however large the evaluation set is.
    """

    BIN = 0.01

    def __init__(self) -> None:
        self.histogram = torch.zeros(int(180 / self.BIN) + 1, dtype=torch.int64)
        self.sum = 0.0
        self.count = 0

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        target = target.cpu().float()
        valid = target.abs().sum(dim=-1) > 0
        unit = outputs[NormalsTask.name].detach().cpu().float()  # (B, H, W, 3)
        cosine = (unit[valid] * target[valid]).sum(dim=-1)
        angles = torch.rad2deg(torch.acos(cosine.double().clamp(-1, 1)))
        self.histogram += torch.bincount((angles / self.BIN).round().long(), minlength=len(self.histogram))
        self.sum += angles.sum().item()
        self.count += angles.numel()

    def compute(self) -> dict[str, float]:
        if not self.count:
            return dict.fromkeys(NormalsTask().metric_directions(), math.nan)
        cumulative = self.histogram.cumsum(0)
        median_bin = int(torch.searchsorted(cumulative, torch.tensor((self.count + 1) // 2)))
        result = {"mean_angle": self.sum / self.count, "median_angle": median_bin * self.BIN}
        for threshold in ANGLE_THRESHOLDS:
            within = cumulative[int(round(threshold / self.BIN))].item()
            result[f"within_{threshold:g}"] = 100.0 * within / self.count
        return result
