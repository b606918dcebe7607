"""Metric depth in metres per pixel; 0 in a target means "no measurement"."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from onepass.data.codecs import DepthPngCodec
from onepass.models.tasks._colormaps import turbo
from onepass.models.tasks._resize import resize_linear
from onepass.models.tasks.base import (
    NonNegativeMapTask,
    OutputAgreement,
    OutputSpec,
    masked_mean,
    register_task,
    resize_map,
)
from onepass.models.tasks.legends import ColourBar

VIEW_NEAR, VIEW_FAR = 0.5, 10.0  # metres: the colour scale of depth pictures (indoor scenes)
LEGEND_TICKS = (0.5, 2, 4, 6, 8, 10)  # metres marked on the colour bar


@register_task
@dataclass(frozen=True)
class DepthTask(NonNegativeMapTask):
    name: ClassVar[str] = "depth"
    codec: ClassVar = DepthPngCodec()
    fill_value: ClassVar[float] = 0.0

    target_rule: ClassVar[str] = "depth must be (H, W), finite and >= 0 metres (0 = no measurement)"

    def rescale_target_values(self, target: np.ndarray, zoom: float) -> np.ndarray:
        # Scaling an image by `zoom` is what moving the camera to distance / zoom looks like.
        return target / zoom

    @staticmethod
    def metres(raw: Tensor) -> Tensor:
        """Raw (B, 1, H, W) -> positive depth (B, H, W); the same map in training and in the graph."""
        return F.softplus(raw.float())[:, 0]

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        return masked_mean((self.metres(raw) - target).abs(), target > 0)  # (B, H, W)

    def new_metric(self) -> DepthErrors:
        return DepthErrors()

    def constant_output(self, targets: Tensor) -> Tensor:
        mean_depth = float(targets[targets > 0].double().mean())
        return torch.tensor([math.log(math.expm1(mean_depth))])  # softplus⁻¹, so metres() gives the mean

    def metric_directions(self) -> dict[str, bool]:
        return {"abs_err": False, "abs_rel": False, "rmse": False, "delta1": True}

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.name: self.metres(raw)}

    def postprocess_at(self, raw: Tensor, size: tuple[Any, Any]) -> dict[str, Tensor]:
        """Metres at the model's resolution, then upsampled, as the Python path resizes them: softplus on
        the model's pixels, not the frame's (at 480x640 it was 13 % of the frame graph's kernel time)."""
        return {self.name: resize_map(self.metres(raw)[:, None], size)[:, 0]}

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return (OutputSpec(self.name, "float32", ("N", "H", "W")),)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        reference = expected[self.name]
        relative = np.abs(actual[self.name] - reference) / np.maximum(np.abs(reference), 1e-6)
        return [OutputAgreement(self.name, "max relative error", float(relative.max()), 1e-3, False)]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        return resize_linear(outputs[self.name], size)

    def visualize(self, result: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """Turbo colours on a fixed scale from 0.5 m (warm) to 10 m (cold) and beyond: the same colour
        is the same distance in every picture, so truth and prediction (and frames) compare by eye."""
        picture = _colours(result)
        picture[result <= 0] = 0
        return picture

    def legend(self, result: np.ndarray) -> ColourBar:
        """The fixed scale in metres, and the range this picture shows."""
        metres = np.linspace(VIEW_NEAR, VIEW_FAR, 32)
        ticks = tuple(((m - VIEW_NEAR) / (VIEW_FAR - VIEW_NEAR), f"{m:g}") for m in LEGEND_TICKS)
        valid = result[result > 0]
        notes = [f"this image: {valid.min():.1f} to {valid.max():.1f} m" if valid.size else "no depth"]
        if valid.size < result.size:
            notes.append("black: no depth")
        colours = tuple(tuple(c) for c in _colours(metres).tolist())
        return ColourBar("depth (m)", colours, ticks, "; ".join(notes))


def _colours(metres: np.ndarray) -> np.ndarray:
    scaled = (np.clip(metres, VIEW_NEAR, VIEW_FAR) - VIEW_NEAR) / (VIEW_FAR - VIEW_NEAR)
    return turbo(1.0 - scaled)


class DepthErrors:
    """Pooled over every valid pixel of the set: abs err (m), abs rel, RMSE (m), % with δ < 1.25."""

    def __init__(self) -> None:
        self.count = 0
        self.sums = torch.zeros(4, dtype=torch.float64)  # abs, rel, squared, within 1.25

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        predicted = outputs[DepthTask.name].detach().cpu().double()  # metres (B, H, W)
        target = target.cpu().double()
        valid = target > 0
        p, t = predicted[valid].clamp_min(1e-6), target[valid]
        error = (p - t).abs()
        ratio = torch.maximum(p / t, t / p)
        self.sums += torch.stack([error.sum(), (error / t).sum(), (error**2).sum(), (ratio < 1.25).double().sum()])
        self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        if not self.count:
            return dict.fromkeys(("abs_err", "abs_rel", "rmse", "delta1"), float("nan"))
        abs_err, abs_rel, squared, within = (self.sums / self.count).tolist()
        return {"abs_err": abs_err, "abs_rel": abs_rel, "rmse": squared**0.5, "delta1": 100.0 * within}
