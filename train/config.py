"""The training configuration: small frozen dataclasses, one per concern, composed by `TrainConfig`.

    TrainConfig
      model      ModelOptions      the network to build (the package's ModelConfig comes from it)
      data       DataOptions       the training and held-out folders, loading, and its Augmentation
      optimizer  OptimizerOptions  optimiser, learning rates, schedule, batch size
      balancer   BalancerOptions   the multi-task loss balancer and its options
      calibration CalibrationOptions the tasks' decision settings, chosen after the last epoch
      run        RunOptions        where to write, how long, seed, device, checkpoints, logging

Every field has one flat key, unique over all sections: its name, or the `key` in its metadata where
the name alone would not say it (`data.path` is `data`, `optimizer.name` is `optimizer`). Config
files (YAML or TOML) and `--set` use these keys, `onepass train` has a flag for each (`--batch-size`),
and the package records the config flat under `training.config`: the config files, scripts, saved
packages and checkpoints written before the sections existed read as they did. Each field's
metadata (`option`) holds its help text, its choices and whether it may change when a run resumes.

This module imports nothing heavy (no torch), so that `onepass train --help` builds its flags from
it at once; the registries' names for the flags' choices are therefore listed here too, and a test
checks them against the registries. Constructing a config checks names against the live registries,
which imports them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from onepass.errors import ConfigError, unknown_name_error

# The built-in names of the registries (onepass.models.tasks.TASK_TYPES, onepass.models.ARCHITECTURES,
# onepass.train.balancers.BALANCERS), for the flags' choices and help without importing torch, which
# the registries need. tests/train/test_config.py fails when these and the registries differ.
TASK_TYPE_NAMES = ("semseg", "depth", "normals", "attributes", "people", "saliency")
ARCHITECTURE_NAMES = ("shared-fpn", "hps", "padnet", "mtinet")
HEAD_CONVOLUTIONS = ("full", "separable")  # onepass.models.architectures.HEAD_CONVOLUTIONS
BALANCER_NAMES = ("fixed", "uncertainty", "gradnorm", "dwa", "famo", "aligned-mtl", "cagrad", "nash-mtl")
# These two are defined here (train/loop.py builds them).
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    key: str | None = None,
    choices: Sequence[str] | None = None,
    metavar: str | None = None,
    may_change_on_resume: bool = False,
    default_factory: Any = MISSING,
) -> Any:
    """A config field with what the CLI and the resume check need to know about it: its help, its flat
    key where that is not its name, its choices, the flag's metavar, and whether a resumed run may
    change it (most options may not: the run would not be the one its checkpoint continues)."""
    metadata = {
        "help": help, "key": key, "choices": choices, "metavar": metavar, "may_change_on_resume": may_change_on_resume
    }  # fmt: skip
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ---- the sections ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelOptions:
    """The network to train; with the dataset's class names it becomes the package's ModelConfig."""

    tasks: tuple[str, ...] = option(
        ("semseg", "depth", "normals", "attributes"), "task types, comma-separated (class names come from dataset.json)",
        choices=TASK_TYPE_NAMES,
    )  # fmt: skip
    encoder: str = option("mobilenetv4_conv_small", "timm model name (any with features_only=True)", metavar="NAME")
    architecture: str = option("shared-fpn", "how the task heads share the network", choices=ARCHITECTURE_NAMES)
    decoder_channels: int = option(64, "channels of the FPN decoder(s)")
    head_convolution: str = option(
        "full", "the task heads' 3x3 convolutions: full, or separable (depthwise 3x3 + pointwise 1x1, "
        "0.13x their multiply-adds at 64 channels)", choices=HEAD_CONVOLUTIONS,
    )  # fmt: skip
    head_stride: int = option(
        1, "1, or 2: the per-pixel heads at half the decoder's resolution (a quarter of their "
        "multiply-adds), their outputs upsampled in the graph",
    )  # fmt: skip
    input_size: tuple[int, int] = option((128, 160), "HxW the model takes, multiples of 32")
    pretrained: bool = option(False, "start the encoder from timm's pretrained weights (a download; provenance only)")
    # Its path and SHA-256 go in the package's provenance, and the package then holds the weights. A
    # resumed run names the same path, and the Trainer checks that the file's SHA-256 is the same too.
    pretrained_file: str | None = option(
        None, "start the encoder from a local weights file: timm, torchvision or safetensors", metavar="PATH"
    )
    # Like pretrained_file, but every tensor: the package's path and its weights' SHA-256 go in the new
    # package's provenance (training.init_from), and the new package holds the weights. Step 0 only: a
    # resumed run continues from its checkpoint's weights and does not read the package again.
    init_from: str | None = option(
        None, "start the whole model from a model package's weights (same architecture and tasks; fresh "
        "optimiser and schedule)", metavar="PKG",
    )  # fmt: skip
    # A config file may also write a task as a mapping in `tasks`, {type: people, head_attributes: [...]}:
    # `TrainConfig.from_mapping` moves its options here.
    task_options: dict[str, dict[str, Any]] = option(
        help="options of a task beyond what the dataset gives it, by task type, e.g. "
        "\"{'people': {'head_attributes': ['looking', 'yaw']}}\"", default_factory=dict,
    )  # fmt: skip

    def __post_init__(self) -> None:
        from onepass.models.architectures import architecture_class
        from onepass.models.tasks import TASK_TYPES

        if not self.tasks:
            raise ConfigError("tasks: a model needs at least one task")
        for task in self.tasks:
            if task not in TASK_TYPES:
                raise unknown_name_error("task", task, list(TASK_TYPES))
        architecture_class(self.architecture)  # the architectures' names, with a close match
        if self.pretrained and self.pretrained_file:
            raise ConfigError("pretrained (timm's hub) and pretrained_file (a local file) both set: choose one")
        if self.init_from and (self.pretrained or self.pretrained_file):
            raise ConfigError(
                "init_from (a package's weights, the encoder's included) and pretrained/pretrained_file (the "
                "encoder's) both set: the package's weights would replace the encoder's; choose one"
            )
        for task, values in self.task_options.items():
            if task not in self.tasks:
                raise ConfigError(f"task_options names task {task!r}, which is not among the tasks {list(self.tasks)}")
            settable = [f.name for f in dataclasses.fields(TASK_TYPES[task])]
            for name in values:
                if name not in settable:
                    raise unknown_name_error(f"option of task {task!r}", name, settable)


@dataclass(frozen=True)
class Augmentation:
    """Random flip, zoom-out and colour jitter of the training images, consistent in every label.

    Zoom is out only (the image shrinks into a padded canvas): zooming in could crop a person out of
    view and silently make the `people` label wrong; padding is unlabelled in every task.
    """

    min_zoom: float = option(0.75, "smallest zoom-out factor, in [0.1, 1] (1: no zoom)")
    flip: bool = option(True, "flip half of the images left to right")
    colour: float = option(0.2, "brightness/contrast/saturation jitter amplitude (0: none)")

    def __post_init__(self) -> None:
        if not 0.1 <= self.min_zoom <= 1.0:
            raise ConfigError(f"min_zoom must be in [0.1, 1], got {self.min_zoom}")
        if not 0.0 <= self.colour < 1.0:
            raise ConfigError(f"colour must be in [0, 1), got {self.colour}")


@dataclass(frozen=True)
class DataOptions:
    """The folder datasets (DESIGN.md's format) and how they are loaded."""

    path: str = option(help="training dataset folder", key="data", metavar="DIR")
    val_path: str | None = option(
        None, "held-out dataset folder: evaluated after each epoch and written to metrics.json", key="val_data",
        metavar="DIR", may_change_on_resume=True,  # it only scores the model, never trains it
    )  # fmt: skip
    augment: bool = option(True, "augment the training images (the augmentation options below)")
    augmentation: Augmentation = dataclasses.field(default_factory=Augmentation)
    # samples depend only on (seed, epoch, index), never on which worker loads them
    num_workers: int = option(1, "data loading processes (0: in the training process)", may_change_on_resume=True)


@dataclass(frozen=True)
class OptimizerOptions:
    """The optimiser, its learning rates and their schedule."""

    name: str = option("adamw", "optimiser", key="optimizer", choices=OPTIMIZERS)
    lr: float = option(2e-3, "learning rate (of every parameter group that has none of its own)")
    lr_shared: float | None = option(None, "learning rate of the encoder and the shared decoder (default: lr)")
    lr_tasks: dict[str, float] = option(
        help="per-task learning rate of its head (and own decoder), e.g. \"{'depth': 4e-3}\"", default_factory=dict
    )
    weight_decay: float = option(1e-4, "weight decay")
    schedule: str = option("cosine", "learning-rate schedule after the warm-up", choices=SCHEDULES)
    # BatchNorm statistics settle before the large steps
    warmup_steps: int = option(100, "steps of linear warm-up (at most a fifth of the run)")
    batch_size: int = option(16, "images per optimiser step and process")

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise unknown_name_error("optimizer", self.name, OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            raise unknown_name_error("schedule", self.schedule, SCHEDULES)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")


@dataclass(frozen=True)
class BalancerOptions:
    """How the tasks' losses are balanced (onepass.train.balancers; docs/balancers.md)."""

    name: str = option("uncertainty", "multi-task loss balancer", key="balancer", choices=BALANCER_NAMES)
    options: dict[str, Any] = option(
        help="the balancer's options, e.g. \"{'alpha': 1.5}\" for gradnorm", key="balancer_options",
        default_factory=dict,
    )  # fmt: skip

    def __post_init__(self) -> None:
        # Checked here, when the config is made, so that a misspelt option fails before any data is
        # read; the values are checked when the balancer is built, also before the data.
        from onepass.train.balancers import BALANCERS, balancer_options

        if self.name not in BALANCERS:
            raise unknown_name_error("balancer", self.name, list(BALANCERS))
        valid = balancer_options(BALANCERS[self.name])
        unknown = sorted(set(self.options) - set(valid))
        if unknown:
            raise ConfigError(
                f"balancer_options: balancer {self.name!r} has no option(s) {unknown} "
                f"(its options: {', '.join(sorted(valid)) or 'none'})"
            )


@dataclass(frozen=True)
class CalibrationOptions:
    """After the last epoch, each task's decision settings (a score threshold) chosen on labelled data."""

    calibrate: bool = option(
        True, "choose the tasks' decision settings after training (onepass calibrate does it later)",
        may_change_on_resume=True,  # it runs after the last step, on the trained weights
    )  # fmt: skip
    # not val_data by default: that folder scores metrics.json, which would then report a threshold
    # chosen on its own images
    path: str | None = option(
        None, "labelled folder to choose them on (default: the training folder, without augmentation)",
        key="calibration_data", metavar="DIR", may_change_on_resume=True,
    )  # fmt: skip
    images: int = option(
        500, "at most this many of its images, spread over the folder", key="calibration_images",
        may_change_on_resume=True,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ConfigError(f"calibration_images must be positive, got {self.images}")


@dataclass(frozen=True)
class RunOptions:
    """Where the run writes, how long it runs, and where."""

    out: str = option(help="model package directory to write", metavar="DIR", may_change_on_resume=True)
    name: str | None = option(
        None, "package name (default: the out folder's name)", metavar="NAME", may_change_on_resume=True
    )
    epochs: int = option(10, "passes over the training data", may_change_on_resume=True)
    steps: int | None = option(None, "total optimiser steps; overrides epochs when set", may_change_on_resume=True)
    seed: int = option(0, "initialisation, sample order and augmentation")
    device: str = option("auto", "auto (cuda when available) | cpu | cuda | cuda:N", metavar="DEVICE")
    amp: bool = option(True, "mixed precision on CUDA (ignored on the CPU)")
    checkpoint_every: int = option(200, "steps between checkpoints", may_change_on_resume=True)
    log_every: int = option(20, "steps between progress-bar loss updates", may_change_on_resume=True)
    val_every: int = option(
        1, "epochs between evaluations on val_data in train/log.jsonl (the last epoch's is always made)",
        may_change_on_resume=True,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ConfigError(f"epochs and steps must be positive, got epochs={self.epochs}, steps={self.steps}")
        if self.val_every < 1:
            raise ConfigError(f"val_every must be at least 1 epoch, got {self.val_every}")


# ---- the whole ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    model: ModelOptions = dataclasses.field(default_factory=ModelOptions)
    data: DataOptions  # the training folder is required
    optimizer: OptimizerOptions = dataclasses.field(default_factory=OptimizerOptions)
    balancer: BalancerOptions = dataclasses.field(default_factory=BalancerOptions)
    calibration: CalibrationOptions = dataclasses.field(default_factory=CalibrationOptions)
    run: RunOptions  # and so is the output directory

    def __post_init__(self) -> None:
        unknown = set(self.optimizer.lr_tasks) - set(self.model.tasks)
        if unknown:
            raise ConfigError(
                f"lr_tasks names {sorted(unknown)}, which are not among the tasks {list(self.model.tasks)}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """From flat keys (a config file, flags, `--set`); each value is checked against its field's type.
        A task in `tasks` may be a mapping, {type: people, head_attributes: [...]}: its options join
        `task_options`."""
        values = split_task_entries(values)
        by_key = {o.key: o for o in options()}
        unknown = set(values) - set(by_key)
        if unknown:
            raise unknown_name_error("training option", sorted(unknown)[0], list(by_key))
        missing = [o.key for o in options() if o.required and o.key not in values]
        if missing:
            raise ConfigError(f"training option {missing[0]!r} is required ({by_key[missing[0]].help})")
        checked = {key: _checked(by_key[key], value) for key, value in values.items()}
        return _build(cls, checked)

    def to_json(self) -> dict[str, Any]:
        """Flat: {key: value}, JSON types (the checkpoint's and the package's record)."""
        return {o.key: _jsonable(o.value_in(self)) for o in options()}

    def resume_conflicts(self, saved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """{key: (this config's value, the saved one)} for each option that may not change on resume
        and differs from the checkpoint's `saved` config (flat JSON). A key the saved config lacks was
        not an option when it was written: the run had its default."""
        current = self.to_json()
        conflicts = {}
        for o in options():
            if o.may_change_on_resume:
                continue
            before = saved.get(o.key, None if o.required else _jsonable(o.default))
            if before != current[o.key]:
                conflicts[o.key] = (current[o.key], before)
        return conflicts


def split_task_entries(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with each mapping in its `tasks` list ({type: NAME, option: value, ...}) replaced by
    NAME, and its options moved to `task_options` (an option given both ways is refused)."""
    tasks = values.get("tasks")
    if not isinstance(tasks, list | tuple) or not any(isinstance(t, Mapping) for t in tasks):
        return dict(values)
    task_options = {k: dict(v) for k, v in (values.get("task_options") or {}).items()}
    names = []
    for entry in tasks:
        if not isinstance(entry, Mapping):
            names.append(entry)
            continue
        entry = dict(entry)
        name = entry.pop("type", None)
        if not isinstance(name, str):
            raise ConfigError(
                f"tasks: a task written as a mapping needs its type, e.g. {{type: people, ...}}; got {entry}"
            )
        both = sorted(set(entry) & set(task_options.get(name, {})))
        if both:
            raise ConfigError(
                f"tasks: option(s) {both} of task {name!r} are set in tasks and in task_options; set each once"
            )
        task_options.setdefault(name, {}).update(entry)
        names.append(name)
    return {**values, "tasks": names, "task_options": task_options}


# ---- the flat keys --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One leaf field of TrainConfig, under its flat key."""

    key: str
    path: tuple[str, ...]  # attribute path from TrainConfig, e.g. ("data", "augmentation", "min_zoom")
    section: type  # the dataclass that declares it
    hint: Any  # its resolved type
    field: dataclasses.Field

    @property
    def help(self) -> str:
        return self.field.metadata.get("help", "")

    @property
    def choices(self) -> tuple[str, ...] | None:
        choices = self.field.metadata.get("choices")
        return tuple(choices) if choices is not None else None

    @property
    def metavar(self) -> str | None:
        return self.field.metadata.get("metavar")

    @property
    def may_change_on_resume(self) -> bool:
        return bool(self.field.metadata.get("may_change_on_resume"))

    @property
    def required(self) -> bool:
        return self.field.default is MISSING and self.field.default_factory is MISSING

    @property
    def default(self) -> Any:
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return None if self.field.default is MISSING else self.field.default

    def value_in(self, config: TrainConfig) -> Any:
        return functools.reduce(getattr, self.path, config)


@functools.cache
def options() -> tuple[Option, ...]:
    """Every leaf field of TrainConfig, section by section; fails on a key used twice."""
    found = tuple(_leaf_options(TrainConfig, ()))
    keys = [o.key for o in found]
    if len(set(keys)) != len(keys):
        raise TypeError(f"TrainConfig: flat keys must be unique, got {sorted(k for k in keys if keys.count(k) > 1)}")
    return found


def _leaf_options(cls: type, path: tuple[str, ...]):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _leaf_options(hint, (*path, f.name))
        else:
            yield Option(f.metadata.get("key") or f.name, (*path, f.name), cls, hint, f)


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """`cls` with the fields `values` gives (flat keys), its sections built the same way."""
    hints = typing.get_type_hints(cls)
    arguments = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            arguments[f.name] = _build(hints[f.name], values)
        elif (key := f.metadata.get("key") or f.name) in values:
            arguments[f.name] = values[key]
    return cls(**arguments)


def _checked(option: Option, value: Any) -> Any:
    """`value` as the field's type wants it (a list becomes a tuple, an int a float), or a ConfigError
    that names the option."""
    try:
        return _as_type(option.hint, value)
    except (TypeError, ValueError):
        raise ConfigError(f"training option {option.key}: expected {_describe(option.hint)}, got {value!r}") from None


def _as_type(hint: Any, value: Any) -> Any:
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None
        if value is None and type(None) in arguments:
            return None
        (inner,) = [a for a in arguments if a is not type(None)]
        return _as_type(inner, value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):  # --set augment=false
            return value.lower() == "true"
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, str) and arguments[-1] is Ellipsis:  # "semseg,depth"
            value = value.split(",")
        if isinstance(value, list | tuple):
            items = arguments[:1] * len(value) if arguments[-1] is Ellipsis else arguments
            if len(items) == len(value):
                return tuple(_as_type(h, v) for h, v in zip(items, value, strict=True))
    elif origin is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return {k: _as_type(arguments[1], v) for k, v in value.items()}
    elif hint is Any:
        return value
    raise TypeError(value)


_NOUNS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings")}  # fmt: skip


def _describe(hint: Any, plural: bool = False) -> str:
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join("None" if a is type(None) else _describe(a) for a in arguments)
    if origin is tuple:
        if arguments[-1] is Ellipsis:
            return f"a list of {_describe(arguments[0], plural=True)}"
        return f"a list of {len(arguments)} {_describe(arguments[0], plural=True)}"
    if origin is dict:
        return f"a mapping of name: {_describe(arguments[1])}"
    return _NOUNS.get(hint, ("a value", "values"))[plural]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


# ---- files and overrides --------------------------------------------------------------------------
def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or TOML (.toml) file of flat TrainConfig keys."""
    import tomllib  # here, not at the top: `onepass --help` imports this module

    import yaml

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
    import ast

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
