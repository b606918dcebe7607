"""The training configuration: one frozen dataclass, from a YAML/TOML file and/or CLI overrides."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onepass.errors import ConfigError, unknown_name_error
from onepass.models.architectures import architecture_class
from onepass.models.tasks import TASK_TYPES
from onepass.train.balancers import BALANCERS

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    data: str  # a dataset folder (DESIGN.md folder format)
    out: str  # the model package directory to write
    val_data: str | None = None  # held-out folder: evaluated after each epoch and written to metrics.json
    name: str | None = None  # package name (default: the out folder's name)
    # model
    tasks: tuple[str, ...] = ("semseg", "depth", "normals", "attributes")  # class names come from dataset.json
    encoder: str = "mobilenetv4_conv_small"
    architecture: str = "shared-fpn"
    decoder_channels: int = 64
    input_size: tuple[int, int] = (128, 160)
    pretrained: bool = False
    # A local file of ImageNet (or other) weights for the encoder: timm, torchvision or safetensors
    # (models/encoder.py says which layouts); its path and SHA-256 go in the package's provenance.
    pretrained_file: str | None = None
    # schedule
    epochs: int = 10
    steps: int | None = None  # total optimiser steps; overrides epochs when set
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 2e-3
    lr_shared: float | None = None  # encoder + shared decoder; default lr
    lr_tasks: dict[str, float] = field(default_factory=dict)  # per-task head (and own decoder) lr
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 100  # linear warm-up; BatchNorm statistics settle before large steps
    # multi-task loss balancing
    balancer: str = "uncertainty"
    balancer_options: dict[str, Any] = field(default_factory=dict)
    # data
    augment: bool = True
    min_zoom: float = 0.75  # zoom-out only: zooming in could crop a person and change the count
    num_workers: int = 1
    # run
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    checkpoint_every: int = 200  # steps
    log_every: int = 20  # steps

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise unknown_name_error("optimizer", self.optimizer, list(OPTIMIZERS))
        if self.schedule not in SCHEDULES:
            raise unknown_name_error("schedule", self.schedule, list(SCHEDULES))
        if self.balancer not in BALANCERS:
            raise unknown_name_error("balancer", self.balancer, list(BALANCERS))
        for task in self.tasks:
            if task not in TASK_TYPES:
                raise unknown_name_error("task", task, list(TASK_TYPES))
        architecture_class(self.architecture)
        unknown = set(self.lr_tasks) - set(self.tasks)
        if unknown:
            raise ConfigError(f"lr_tasks names {sorted(unknown)}, which are not among the tasks {list(self.tasks)}")
        if self.batch_size < 1 or self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ConfigError("batch_size, epochs and steps must be positive")
        if self.pretrained and self.pretrained_file:
            raise ConfigError("pretrained (timm's hub) and pretrained_file (a local file) both set: choose one")
        if not 0.1 <= self.min_zoom <= 1.0:
            raise ConfigError(f"min_zoom must be in [0.1, 1], got {self.min_zoom}")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            name = sorted(unknown)[0]
            raise unknown_name_error("training option", name, sorted(fields))
        converted = {
            k: tuple(v) if isinstance(v, list) and k in ("tasks", "input_size") else v for k, v in values.items()
        }
        try:
            return cls(**converted)
        except TypeError as error:
            raise ConfigError(f"training config: {error}") from None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or TOML (.toml) file of TrainConfig fields."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            values = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config files are .yaml, .yml or .toml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot parse ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    return values


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """["lr=0.01", "lr_tasks={'depth': 1e-3}"] -> {"lr": 0.01, ...}; values read by ast.literal_eval
    (never eval), and a bare word stays a string."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} must look like key=value")
        try:
            values[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key.strip()] = text
    return values
