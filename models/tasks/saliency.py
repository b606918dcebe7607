"""Saliency: where the people in the scene look, as a distribution over the image's pixels.

In the advertising scenario this is "what they look at": the synthetic ground truth comes from the
people's gaze rays hitting the room's surfaces, blurred into a density (onepass.data.synth).

The head emits one logit per pixel; the graph turns them into a distribution with a softmax over
all the pixels of each image (the map sums to 1). Training minimises the KL divergence from the
true distribution, the saliency field's usual loss. Metrics, per image and then averaged over the
set (the field's definition: each image's distribution is its own unit):

- KLD (lower is better): KL(true || predicted), in nats;
- CC (higher): Pearson's correlation between the two maps;
- NSS (higher): the mean of the standardised predicted map at the fixations.

Deviation: NSS is defined on fixation points, and a synthetic density has none; its fixations are
taken to be the pixels where the true density is at least half its maximum (the cores of the
blurred gaze points). A target that is all zeros means "not labelled" and masks the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from onepass.data.codecs import DensityPngCodec
from onepass.models.tasks._colormaps import turbo
from onepass.models.tasks._resize import resize_linear
from onepass.models.tasks.base import NonNegativeMapTask, OutputAgreement, OutputSpec, register_task
from onepass.models.tasks.legends import ColourBar

FIXATION_LEVEL = 0.5  # NSS's fixations: pixels at or above half the true density's maximum
EPSILON = 1e-12


@register_task
@dataclass(frozen=True)
class SaliencyTask(NonNegativeMapTask):
    name: ClassVar[str] = "saliency"
    codec: ClassVar = DensityPngCodec()
    fill_value: ClassVar[float] = 0.0  # padding carries no attention

    target_rule: ClassVar[str] = "a saliency map must be (H, W), finite and >= 0"

    @staticmethod
    def distribution(raw: Tensor) -> Tensor:
        """Raw (B, 1, H, W) logits -> (B, H, W) probabilities summing to 1 per image."""
        batch, _, height, width = raw.shape
        return raw.float().reshape(batch, -1).softmax(dim=1).reshape(batch, height, width)

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        mass = target.flatten(1).sum(dim=1)  # (B,)
        labelled = mass > 0
        if not bool(labelled.any()):
            return None
        true = target.flatten(1)[labelled] / mass[labelled, None]  # (L, H*W), each sums to 1
        log_predicted = raw.float().flatten(1)[labelled].log_softmax(dim=1)
        kl = (true * (torch.log(true.clamp_min(EPSILON)) - log_predicted)).sum(dim=1)  # (L,)
        return kl.mean()

    def new_metric(self) -> SaliencyMetrics:
        return SaliencyMetrics()

    def constant_output(self, targets: Tensor) -> Tensor:
        return torch.zeros(1)  # equal logits everywhere: the uniform distribution

    def metric_directions(self) -> dict[str, bool]:
        return {"kld": False, "cc": True, "nss": True}

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.name: self.distribution(raw)}

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return (OutputSpec(self.name, "float32", ("N", "H", "W")),)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        # Probabilities of single pixels are tiny (1 / H·W on average): compare them relative to each
        # image's largest, the way a picture of the map shows them.
        reference, other = expected[self.name], actual[self.name]
        peak = np.maximum(reference.reshape(len(reference), -1).max(axis=1), EPSILON)[:, None, None]
        difference = float((np.abs(other - reference) / peak).max())
        return [OutputAgreement(self.name, "max difference / image maximum", difference, 1e-3, False)]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """The distribution at the image's size, still summing to 1."""
        density = resize_linear(outputs[self.name], size)
        return density / max(float(density.sum()), EPSILON)

    def visualize(self, result: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """Turbo colours from nothing (dark blue) to the image's most looked-at place (red), blended
        over the scene so that the places read."""
        peak = max(float(result.max()), EPSILON)
        colours = turbo(result / peak)
        if image is None or image.shape[:2] != result.shape:
            return colours
        weight = (0.35 + 0.5 * (result / peak))[..., None]
        return (image.astype(np.float32) * (1 - weight) + colours.astype(np.float32) * weight).astype(np.uint8)

    def legend(self, result: np.ndarray) -> ColourBar:
        positions = np.linspace(0.0, 1.0, 32)
        colours = tuple(tuple(c) for c in turbo(positions).tolist())
        ticks = ((0.0, "none"), (0.5, "half"), (1.0, "most"))
        return ColourBar("attention (relative to this image's most looked-at place)", colours, ticks)

    def label_summary(self) -> str:
        return "where people look: a distribution over the image's pixels"


class SaliencyMetrics:
    """KLD, CC and NSS per labelled image, averaged over the set."""

    def __init__(self) -> None:
        self.sums = {"kld": 0.0, "cc": 0.0, "nss": 0.0}
        self.count = 0

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        predicted = outputs[SaliencyTask.name].detach().cpu().double().flatten(1)  # (B, H*W), sums to 1
        true = target.detach().cpu().double().flatten(1)
        mass = true.sum(dim=1)
        for p, t, m in zip(predicted, true, mass, strict=True):
            if m <= 0:
                continue
            t = t / m
            self.sums["kld"] += float((t * (torch.log(t.clamp_min(EPSILON)) - torch.log(p.clamp_min(EPSILON)))).sum())
            pc, tc = p - p.mean(), t - t.mean()
            self.sums["cc"] += float((pc * tc).sum() / ((pc.norm() * tc.norm()).clamp_min(EPSILON)))
            fixations = t >= FIXATION_LEVEL * t.max()
            self.sums["nss"] += float(((p - p.mean()) / p.std().clamp_min(EPSILON))[fixations].mean())
            self.count += 1

    def compute(self) -> dict[str, float]:
        if not self.count:
            return dict.fromkeys(self.sums, math.nan)
        return {name: total / self.count for name, total in self.sums.items()}
