"""Image-level attributes: several named classification groups, each with its class names.

The head emits one logit vector per image with the groups' logits concatenated in config order
(B, sum of group sizes); the graph splits and soft-maxes it into one probability tensor per group
named `attr_<group>`. A target holds one class index per group, -1 where that group is unlabelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onepass.errors import ConfigError
from onepass.models.tasks.base import ImageTask, OutputAgreement, OutputSpec, one_hot_logits, register_task

MISSING = -1


@register_task
@dataclass(frozen=True)
class AttributesTask(ImageTask):
    groups: dict[str, tuple[str, ...]]

    name: ClassVar[str] = "attributes"

    def __post_init__(self) -> None:
        if not self.groups:
            raise ConfigError("attributes needs at least one group")
        for group, classes in self.groups.items():
            if len(classes) < 2 or len(set(classes)) != len(classes):
                raise ConfigError(f"attribute group {group!r} needs at least two distinct class names, got {classes}")
            if not group.isidentifier():
                raise ConfigError(f"attribute group name {group!r} must be an identifier (it names an output)")

    def __hash__(self) -> int:  # dict field: hash by content
        return hash(tuple((g, c) for g, c in self.groups.items()))

    @classmethod
    def from_dataset(cls, description) -> AttributesTask:
        return cls({g: tuple(c) for g, c in description.attribute_groups.items()})

    def reads_labels_of(self, description) -> bool:
        return all(tuple(description.attribute_groups.get(g, ())) == c for g, c in self.groups.items())

    @property
    def out_channels(self) -> int:
        return sum(len(c) for c in self.groups.values())

    def output_name(self, group: str) -> str:
        return f"attr_{group}"

    def build_head(self, in_channels: int) -> nn.Module:
        return PooledClassifier(in_channels, self.out_channels)

    def target(self, label: Mapping[str, str | None] | None, size: tuple[int, int], source: str) -> np.ndarray:
        label = label or {}
        indices = []
        for group, classes in self.groups.items():
            value = label.get(group)
            if value is None:
                indices.append(MISSING)
            elif value in classes:
                indices.append(classes.index(value))
            else:
                raise ValueError(
                    f"{source}: {value!r} is not a class of attribute group {group!r} ({', '.join(classes)})"
                )
        return np.array(indices, np.int64)

    def _split(self, raw: Tensor) -> dict[str, Tensor]:
        sizes = [len(c) for c in self.groups.values()]
        return dict(zip(self.groups, torch.split(raw, sizes, dim=1), strict=True))

    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        # raw (B, sum C_g); target (B, G). Mean over groups of the cross-entropy of labelled images.
        losses = [
            F.cross_entropy(logits.float(), target[:, g], ignore_index=MISSING)
            for g, logits in enumerate(self._split(raw).values())
            if bool((target[:, g] != MISSING).any())
        ]
        return torch.stack(losses).mean() if losses else None

    def new_metric(self) -> GroupAccuracy:
        return GroupAccuracy(self)

    def constant_output(self, targets: Tensor) -> Tensor:
        majority = []
        for g, classes in enumerate(self.groups.values()):
            labelled = targets[:, g][targets[:, g] != MISSING]
            counts = torch.bincount(labelled, minlength=len(classes))
            majority.append(one_hot_logits(int(counts.argmax()), len(classes)))
        return torch.cat(majority)

    def metric_directions(self) -> dict[str, bool]:
        return {f"acc_{group}": True for group in self.groups}

    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        return {self.output_name(g): logits.float().softmax(dim=1) for g, logits in self._split(raw).items()}

    def output_specs(self) -> tuple[OutputSpec, ...]:
        return tuple(OutputSpec(self.output_name(g), "float32", ("N", len(c))) for g, c in self.groups.items())

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        names = [self.output_name(g) for g in self.groups]
        return [
            OutputAgreement(n, "max abs difference", float(np.abs(actual[n] - expected[n]).max()), 1e-4, False)
            for n in names
        ]

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> dict[str, dict]:
        result = {}
        for group, classes in self.groups.items():
            probabilities = outputs[self.output_name(group)]
            result[group] = {
                "label": classes[int(np.argmax(probabilities))],
                "probabilities": {c: float(p) for c, p in zip(classes, probabilities, strict=True)},
            }
        return result

    def describe(self, result: Mapping[str, dict]) -> list[str]:
        """'people: 2 (0.91)': each group's label and its probability."""
        return [
            f"{group}: {value['label']} ({value['probabilities'][value['label']]:.2f})"
            for group, value in result.items()
        ]

    def describe_target(self, target: np.ndarray) -> list[str]:
        target = np.asarray(target)
        return [f"{g}: {c[i] if i != MISSING else '?'}" for (g, c), i in zip(self.groups.items(), target, strict=True)]

    def table_columns(self) -> dict[str, str]:
        """Per group its label and that label's probability."""
        return {c: t for group in self.groups for c, t in ((group, "string"), (f"{group}_probability", "float64"))}

    def table_values(self, result: Mapping[str, dict]) -> dict[str, str]:
        values = {}
        for group, value in result.items():
            values[group] = value["label"]
            values[f"{group}_probability"] = f"{value['probabilities'][value['label']]:.6f}"
        return values

    def arrays(self, result: Mapping[str, dict]) -> dict[str, np.ndarray]:
        """Each group's probabilities in the model's class order, as `<task>.<group>`."""
        return {
            f"{self.name}.{group}": np.array(list(value["probabilities"].values()), np.float32)
            for group, value in result.items()
        }

    def label_summary(self) -> str:
        return "; ".join(f"{group}: {'/'.join(classes)}" for group, classes in self.groups.items())


class PooledClassifier(nn.Module):
    """(B, C, h, w) -> (B, out). Average AND max pooling: counting people needs "how much" and
    "is there any", which average pooling alone blurs together."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 128):
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
        )
        self.classify = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_channels)
        )

    def forward(self, features: Tensor) -> Tensor:
        x = self.reduce(features)  # (B, hidden, h, w)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (B, 2 * hidden)
        return self.classify(pooled)


class GroupAccuracy:
    """Pooled accuracy per group over the images labelled for that group (in percent)."""

    def __init__(self, task: AttributesTask):
        self.task = task
        self.correct = torch.zeros(len(task.groups), dtype=torch.int64)
        self.count = torch.zeros(len(task.groups), dtype=torch.int64)

    def update(self, outputs: Mapping[str, Tensor], target: Tensor) -> None:
        target = target.cpu()
        for g, group in enumerate(self.task.groups):
            predicted = outputs[self.task.output_name(group)].detach().cpu().argmax(dim=1)  # (B,)
            labelled = target[:, g] != MISSING
            self.correct[g] += int((predicted[labelled] == target[labelled, g]).sum())
            self.count[g] += int(labelled.sum())

    def compute(self) -> dict[str, float]:
        return {
            f"acc_{group}": 100.0 * self.correct[g].item() / self.count[g].item() if self.count[g] else float("nan")
            for g, group in enumerate(self.task.groups)
        }
