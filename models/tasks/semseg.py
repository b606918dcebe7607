"""Semantic segmentation: C classes per pixel; unlabelled pixels carry IGNORE_INDEX."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from onepass.data.codecs import IGNORE_INDEX, IndexedPngCodec, palette
from onepass.errors import ConfigError
from onepass.models.tasks._resize import resize_nearest
from onepass.models.tasks.base import MapTask, OutputAgreement, OutputSpec, one_hot_logits, register_task
from onepass.models.tasks.legends import Swatches


@register_task
@dataclass(frozen=True)
class SemsegTask(MapTask):
    classes: tuple[str, ...]

    name: ClassVar[str] = "semseg"
    codec: ClassVar = IndexedPngCodec()
    fill_value: ClassVar[float] = IGNORE_INDEX

    def __post_init__(self) -> None:
        if not 2 <= len(self.classes) <= 255:
            raise ConfigError(f"semseg needs 2 to 255 classes, got {len(self.classes)}")

    @classmethod
    def from_dataset(cls, description) -> SemsegTask:
        return cls(tuple(description.classes))

    def reads_labels_of(self, description) -> bool:
        return tuple(description.classes) == self.classes

    @property
    def out_channels(self) -> int:
        return len(self.classes)

    def target(self, label: np.ndarray | None, size: tuple[int, int], source: str) -> np.ndarray:
        if label is None:
            return np.full(size, IGNORE_INDEX, np.uint8)
        unknown = np.unique(label[(label != IGNORE_INDEX) & (label >= len(self.classes))])
        if unknown.size:
            raise ValueError(
                f"{source}: class ids {unknown.tolist()} are not in dataset.json's {len(self.classes)} classes "
                f"(0..{len(self.classes) - 1}, {IGNORE_INDEX} = unlabelled)"
            )
        return label.astype(np.uint8, copy=False)

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        # raw (B, C, H, W) logits; target (B, H, W) uint8 ids
        target = target.long()
        if not bool((target != IGNORE_INDEX).any()):
            return None
        return F.cross_entropy(raw.float(), target, ignore_index=IGNORE_INDEX)

    def new_metric(self) -> ConfusionMatrix:
        return ConfusionMatrix(self)

    def constant_output(self, targets: Tensor) -> Tensor:
        counts = torch.bincount(targets[targets != IGNORE_INDEX].long(), minlength=self.out_channels)
        return one_hot_logits(int(counts[: self.out_channels].argmax()), self.out_channels)

    def metric_directions(self) -> dict[str, bool]:
        return {"miou": True, "pixel_acc": True}

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.name: raw.argmax(dim=1).to(torch.uint8)}  # (B, H, W)

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return (OutputSpec(self.name, "uint8", ("N", "H", "W")),)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        same = float((expected[self.name] == actual[self.name]).mean())
        return [OutputAgreement(self.name, "pixel agreement %", 100.0 * same, 99.9, True)]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        return resize_nearest(outputs[self.name], size)

    def visualize(self, result: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        colours = palette(256)[result]  # (H, W, 3)
        if image is None:
            return colours
        # blended over the scene, so the classes read against what they label
        return (image.astype(np.float32) * 0.45 + colours.astype(np.float32) * 0.55).astype(np.uint8)

    def legend(self, result: np.ndarray) -> Swatches:
        """The classes this picture shows (unlabelled pixels, in a target, are black)."""
        colours = palette(256)
        present = np.flatnonzero(np.bincount(result.ravel(), minlength=256))
        return Swatches("classes", tuple((self._class_name(int(i)), tuple(colours[i].tolist())) for i in present))

    def _class_name(self, index: int) -> str:
        if index < len(self.classes):
            return self.classes[index]
        return "unlabelled" if index == IGNORE_INDEX else str(index)

    def label_summary(self) -> str:
        return ", ".join(self.classes)


class ConfusionMatrix:
    """Pooled confusion matrix -> mIoU (over classes seen in labels or predictions) and pixel accuracy."""

    def __init__(self, task: SemsegTask):
        self.task = task
        self.num_classes = num_classes = len(task.classes)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # (true, predicted)

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        predicted = outputs[self.task.name].flatten().long().cpu()  # class ids (B, H, W)
        target = target.flatten().long().cpu()
        valid = target != IGNORE_INDEX
        index = target[valid] * self.num_classes + predicted[valid]
        self.matrix += torch.bincount(index, minlength=self.num_classes**2).view(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, float]:
        m = self.matrix.double()
        true_positive = m.diag()
        union = m.sum(0) + m.sum(1) - true_positive
        seen = union > 0
        miou = (true_positive[seen] / union[seen]).mean().item() if seen.any() else float("nan")
        total = m.sum().item()
        return {"miou": miou, "pixel_acc": true_positive.sum().item() / total if total else float("nan")}
