"""The task registry: one class per task type declares everything about its head.

| declares                                     | used by                         |
|----------------------------------------------|---------------------------------|
| `build_head` (channels in -> raw output)     | models                          |
| `target`, `loss` (missing labels masked)     | train                           |
| `new_metric`, `metric_directions`            | train, eval, Δ_MTL              |
| `postprocess` (in-graph)                     | export, runtime                 |
| `output_specs` (names, dtypes, shapes)       | export, serve, KServe v2        |
| `codec`, `to_result` (files and HTTP)        | predict, serve                  |
| `visualize` (colour map), `legend` (its key) | panels, serve web page, predict |
| `describe` (image-level result in words)     | panels                          |

The task's registry name is its key everywhere: `forward()`'s dict, loss and metric names,
ONNX outputs, HTTP fields and output file names. Adding a task type means adding one module
with a `@register_task` class; no other stage changes.
"""

from __future__ import annotations

import dataclasses
import difflib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from onepass.data.codecs import Codec
from onepass.models.tasks.legends import Legend

TASK_TYPES: dict[str, type[Task]] = {}


class ConfigError(ValueError):
    """A configuration value is wrong; the message names it and says what is allowed."""


@dataclass(frozen=True)
class OutputSpec:
    """One named output of the exported graph. Shapes use "N" (batch), "H", "W" for dynamic sizes."""

    name: str
    dtype: str  # numpy dtype name: uint8, float32
    shape: tuple[str | int, ...]


@dataclass(frozen=True)
class OutputAgreement:
    """How closely one output of an exported graph matches the reference model (the export issue's
    fp32 thresholds live with each task, since each output type needs its own measure)."""

    output: str
    measure: str
    value: float
    limit: float
    higher_is_better: bool

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


class Metric(Protocol):
    """Accumulates over a whole evaluation set (pooled, never averaged per batch)."""

    def update(self, raw: Tensor, target: Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class Task(ABC):
    """A task type. Subclasses are frozen dataclasses whose fields are the task's saved config."""

    name: ClassVar[str]
    dense: ClassVar[bool]  # per-pixel output at input resolution, or one output per image
    codec: ClassVar[Codec | None] = None  # file/HTTP encoding of a dense prediction or label

    @classmethod
    def from_dataset(cls, classes: tuple[str, ...], attribute_groups: Mapping[str, tuple[str, ...]]) -> Task:
        """The task as a dataset describes it (dataset.json's class names and attribute groups)."""
        return cls()

    # ---- models ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def out_channels(self) -> int: ...

    @abstractmethod
    def build_head(self, in_channels: int) -> nn.Module:
        """Dense tasks: (B, in, h, w) -> (B, out_channels, h, w). Image-level: (B, in, h, w) -> (B, out)."""

    # ---- train ----------------------------------------------------------------------------
    @abstractmethod
    def target(self, label: Any, size: tuple[int, int], source: str) -> np.ndarray:
        """Turn a dataset label (None = missing) into the training target, invalid where unlabelled.

        Raises `DatasetError`-style ValueError naming `source` for a label that does not fit.
        """

    fill_value: ClassVar[float] = 0.0  # target value of pixels without a label (padding)

    def flip_target(self, target: np.ndarray) -> np.ndarray:
        """Target of the horizontally flipped image."""
        return target[:, ::-1] if self.dense else target

    def rescale_target_values(self, target: np.ndarray, zoom: float) -> np.ndarray:
        """Target values after the image is scaled by `zoom` (depth changes; classes do not)."""
        return target

    @abstractmethod
    def loss(self, raw: Tensor, target: Tensor) -> Tensor | None:
        """Mean loss over labelled elements; None when nothing in the batch is labelled."""

    @abstractmethod
    def new_metric(self) -> Metric: ...

    @abstractmethod
    def constant_output(self, targets: Tensor) -> Tensor:
        """The trivial baseline (majority class, mean, most common value) as a raw output vector
        of `out_channels`, estimated from a stack of training targets."""

    @abstractmethod
    def metric_directions(self) -> dict[str, bool]:
        """Metric name -> True when higher is better."""

    # ---- export / runtime -----------------------------------------------------------------
    @abstractmethod
    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        """In-graph post-processing: raw head output -> named outputs (see `output_specs`)."""

    @abstractmethod
    def raw_equivalent(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """A raw head output whose `postprocess` gives `outputs` (as far as post-processing keeps the
        information, enough for every metric): how any backend's outputs are scored by `new_metric`."""

    @abstractmethod
    def output_specs(self) -> tuple[OutputSpec, ...]: ...

    @abstractmethod
    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        """Compare this task's outputs from two runs of the graph (reference first)."""

    @abstractmethod
    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> Any:
        """One image's post-processed outputs -> the user-facing result at the image's (H, W)."""

    # ---- predict / serve ------------------------------------------------------------------
    def visualize(self, result: Any, image: np.ndarray | None = None) -> np.ndarray | None:
        """(H, W, 3) uint8 picture of a dense result (drawn over `image` where that reads better);
        None for image-level tasks."""
        return None

    def legend(self, result: Any) -> Legend | None:
        """The key to `visualize(result)`'s colours (only what this result shows, where that reads
        better); None when the picture needs none."""
        return None

    def describe(self, result: Any) -> list[str]:
        """An image-level result in words, one line per item, for pictures; [] for dense tasks."""
        return []

    def describe_target(self, target: np.ndarray) -> list[str]:
        """One image's image-level training target in words, like `describe`; [] for dense tasks."""
        return []

    def label_summary(self) -> str:
        """What the labels mean, in one line (class names, groups), for `onepass info`."""
        return "-"

    # ---- config ---------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"type": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            config[f.name] = value
        return config


def register_task(cls: type[Task]) -> type[Task]:
    if cls.name in TASK_TYPES:
        raise ValueError(f"task type {cls.name!r} registered twice")
    TASK_TYPES[cls.name] = cls
    return cls


def unknown_name_error(kind: str, name: str, valid: list[str]) -> ConfigError:
    """ "unknown X 'nmae'; did you mean 'name'? valid: ..." — for every registry."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} (valid: {', '.join(sorted(valid))})")


def build_task(config: Mapping[str, Any]) -> Task:
    """Task from its saved config: {"type": "semseg", "classes": [...]}."""
    config = dict(config)
    type_name = config.pop("type", None)
    if type_name not in TASK_TYPES:
        raise unknown_name_error("task type", str(type_name), list(TASK_TYPES))
    cls = TASK_TYPES[type_name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(config) - set(fields)
    if unknown:
        raise ConfigError(f"task {type_name!r}: unknown option(s) {sorted(unknown)} (valid: {sorted(fields)})")
    converted = {k: _freeze(v) for k, v in config.items()}
    try:
        return cls(**converted)
    except TypeError as error:
        raise ConfigError(f"task {type_name!r}: {error}") from None


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def one_hot_logits(index: int, size: int) -> Tensor:
    """Raw logits that make a classifier predict `index` with near certainty."""
    logits = torch.full((size,), -10.0)
    logits[index] = 10.0
    return logits


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def dense_head(in_channels: int, out_channels: int, hidden: int | None = None) -> nn.Sequential:
    """The thin per-task head: one 3x3 conv block, then a 1x1 projection."""
    hidden = hidden or in_channels
    return nn.Sequential(conv_bn_relu(in_channels, hidden), nn.Conv2d(hidden, out_channels, 1))
