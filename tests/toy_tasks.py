"""Three test-only task types, one of each kind, that no module of onepass knows by name: the proof
that a task type is one module (tests/test_task_contract.py registers them for its tests only).

The labels can be read off the pixels, so two training steps are enough to exercise every stage:
- `toy_brightness` (map): each pixel's grey level in [0, 1];
- `toy_tint` (image): which colour channel the image is tinted with;
- `toy_blobs` (instances): the bright squares, as boxes (the people machinery, with no attributes).

Defined here rather than inside the test so that onepass predict's worker processes, which import
the classes of the tasks they are handed, find them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onepass.data.codecs import DepthPngCodec
from onepass.models.tasks._resize import resize_linear
from onepass.models.tasks.attributes import PooledClassifier
from onepass.models.tasks.base import ImageTask, MapTask, OutputAgreement, OutputSpec
from onepass.models.tasks.people import PeopleTask

TINTS = ("red", "green", "blue")


@dataclass(frozen=True)
class ToyBrightness(MapTask):
    name: ClassVar[str] = "toy_brightness"
    codec: ClassVar = DepthPngCodec()  # values in [0, 1] at 1/1000 steps: the depth file encoding will do

    @property
    def out_channels(self) -> int:
        return 1

    def target(self, label: np.ndarray | None, size: tuple[int, int], source: str) -> np.ndarray:
        return np.full(size, -1.0, np.float32) if label is None else label.astype(np.float32)

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        valid = target >= 0
        return (raw[:, 0].sigmoid() - target).abs()[valid].mean() if bool(valid.any()) else None

    def new_metric(self) -> MeanError:
        return MeanError()

    def constant_output(self, targets: Tensor) -> Tensor:
        mean = float(targets[targets >= 0].mean())
        return torch.tensor([np.log(mean / (1 - mean))], dtype=torch.float32)

    def metric_directions(self) -> dict[str, bool]:
        return {"mae": False}

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.name: raw[:, 0].float().sigmoid()}

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return (OutputSpec(self.name, "float32", ("N", "H", "W")),)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        difference = float(np.abs(expected[self.name] - actual[self.name]).max())
        return [OutputAgreement(self.name, "max abs difference", difference, 1e-4, False)]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        return resize_linear(outputs[self.name], size)

    def visualize(self, result: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        return np.repeat((np.clip(result, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)


class MeanError:
    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        valid = target >= 0
        self.total += float((outputs[ToyBrightness.name].cpu() - target.cpu()).abs()[valid.cpu()].sum())
        self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        return {"mae": self.total / self.count if self.count else float("nan")}


@dataclass(frozen=True)
class ToyTint(ImageTask):
    name: ClassVar[str] = "toy_tint"

    @property
    def out_channels(self) -> int:
        return len(TINTS)

    def build_head(self, in_channels: int) -> nn.Module:
        return PooledClassifier(in_channels, len(TINTS), hidden=16)

    def target(self, label: Mapping[str, str | None] | None, size: tuple[int, int], source: str) -> np.ndarray:
        value = (label or {}).get(self.name)
        return np.array(-1 if value is None else TINTS.index(value), np.int64)

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        return F.cross_entropy(raw.float(), target, ignore_index=-1) if bool((target >= 0).any()) else None

    def new_metric(self) -> TintAccuracy:
        return TintAccuracy()

    def constant_output(self, targets: Tensor) -> Tensor:
        logits = torch.full((len(TINTS),), -10.0)
        logits[int(torch.bincount(targets[targets >= 0], minlength=len(TINTS)).argmax())] = 10.0
        return logits

    def metric_directions(self) -> dict[str, bool]:
        return {"accuracy": True}

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.name: raw.float().softmax(dim=1)}

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return (OutputSpec(self.name, "float32", ("N", len(TINTS))),)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        difference = float(np.abs(expected[self.name] - actual[self.name]).max())
        return [OutputAgreement(self.name, "max abs difference", difference, 1e-4, False)]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> str:
        return TINTS[int(np.argmax(outputs[self.name]))]

    def describe(self, result: str) -> list[str]:
        return [f"tinted {result}"]

    def table_columns(self) -> dict[str, str]:
        return {self.name: "string"}

    def table_values(self, result: str) -> dict[str, Any]:
        return {self.name: result}


class TintAccuracy:
    def __init__(self) -> None:
        self.correct, self.count = 0, 0

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        labelled = target.cpu() >= 0
        predicted = outputs[ToyTint.name].cpu().argmax(dim=1)
        self.correct += int((predicted[labelled] == target.cpu()[labelled]).sum())
        self.count += int(labelled.sum())

    def compute(self) -> dict[str, float]:
        return {"accuracy": 100.0 * self.correct / self.count if self.count else float("nan")}


@dataclass(frozen=True)
class ToyBlobs(PeopleTask):
    """Bright squares found like people are: the instance machinery with no attributes and no yaw."""

    name: ClassVar[str] = "toy_blobs"

    @classmethod
    def from_dataset(cls, description: Any) -> ToyBlobs:
        return cls(attributes={}, yaw=False, max_people=4)


TOY_TASKS = (ToyBrightness, ToyTint, ToyBlobs)
