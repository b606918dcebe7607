"""The study's configuration: one versioned YAML file, validated whole before any run starts.

```yaml
format: onepass-study
version: 1
out: runs/study                      # the study folder (--out overrides it)
data:
  synth: {train: 2000, val: 300, size: [128, 160], seed: 0}   # rendered into OUT/data/{train,val}
  # or folders:  train: DIR   val: DIR
seeds: [0, 1, 2]                     # at least 3: every figure is a mean ± std over them
base: {steps: 1200, batch_size: 16}  # TrainConfig fields shared by every run (the fixed budget lives here)
single_task: {balancer: fixed}       # overrides for the derived single-task baselines (one per base task)
configurations:                      # each a name and TrainConfig overrides
  - {name: shared-fpn, architecture: shared-fpn, balancer: fixed}
  - {name: gradnorm-a0.5, balancer: gradnorm, balancer_options: {alpha: 0.5}}
  - other_balancers: {}              # one configuration per registered balancer no configuration names
latency: {repeats: 50, warmup: 5}    # batch-1 torch fp32 CPU medians, interleaved (study/latency.py)
report: {latency_budget: 1.3}        # x the base architecture's latency: the best configuration within it
```

Each run is `onepass train` with base ∪ configuration ∪ {data, val_data, out, seed, name} (the last five
are the study's to set). Steps, epochs and batch size may be set in `base` only, so every run, the
single-task baselines included, has the same budget.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepass.errors import ConfigError, unknown_name_error
from onepass.study.errors import StudyError
from onepass.train.balancing import BALANCERS, build_balancer
from onepass.train.config import TrainConfig, split_task_entries
from onepass.train.config import options as training_options

STUDY_FORMAT = "onepass-study"
STUDY_VERSION = 1
MIN_SEEDS = 3  # the minimum: a spread needs several seeds, and 3 is the least that shows one
SET_BY_STUDY = ("data", "val_data", "out", "seed", "name")  # each run's own, from the study folder and seed
BUDGET = ("steps", "epochs", "batch_size")  # the fixed training budget: `base` only
SINGLE_TASK_PREFIX = "single-"  # the derived baselines' names: single-<task>
OTHER_BALANCERS = "other_balancers"  # the configuration entry that expands over the balancer registry
RUNS_DIR = "runs"
DATA_DIR = "data"
TOP_LEVEL = ("format", "version", "out", "data", "seeds", "base", "single_task", "configurations", "latency", "report")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a configuration name is a folder name


@dataclass(frozen=True)
class SynthData:
    """Synthetic scenes the study renders itself (`onepass.data.synth_dataset`)."""

    train: int
    val: int
    size: tuple[int, int] = (128, 160)
    seed: int = 0
    val_seed: int | None = None  # default seed + 1: held-out scenes are other scenes
    workers: int | None = None  # render processes (default: all cores)

    @property
    def held_out_seed(self) -> int:
        return self.seed + 1 if self.val_seed is None else self.val_seed


@dataclass(frozen=True)
class FolderData:
    train: str
    val: str


@dataclass(frozen=True)
class Configuration:
    name: str
    overrides: dict[str, Any]  # TrainConfig fields over the base
    single_task: str | None = None  # the task of a derived single-task baseline


@dataclass(frozen=True)
class LatencyOptions:
    repeats: int = 50  # timed batch-1 runs per configuration (median), interleaved across configurations
    warmup: int = 5
    threads: int | None = None  # torch threads (default: torch's)


@dataclass(frozen=True)
class RunSpec:
    """One `onepass train` of the study: a configuration at a seed."""

    configuration: str
    seed: int
    config: TrainConfig

    @property
    def out(self) -> Path:
        return Path(self.config.run.out)

    @property
    def label(self) -> str:
        return f"{self.configuration} seed {self.seed}"


@dataclass(frozen=True)
class StudyConfig:
    source: str  # the file it came from, for messages
    out: Path
    data: SynthData | FolderData
    seeds: tuple[int, ...]
    base: dict[str, Any]
    single_task: dict[str, Any]
    configurations: tuple[Configuration, ...]  # the multi-task ones, `other_balancers` expanded
    latency: LatencyOptions = LatencyOptions()
    latency_budget: float = 1.3  # x the base architecture's latency

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.base.get("tasks", _default("tasks")))

    @property
    def base_architecture(self) -> str:
        return self.base.get("architecture", _default("architecture"))

    def data_folders(self) -> tuple[str, str]:
        """(train, val) as every run's TrainConfig names them."""
        if isinstance(self.data, FolderData):
            return self.data.train, self.data.val
        return str(self.out / DATA_DIR / "train"), str(self.out / DATA_DIR / "val")

    def baselines(self) -> tuple[Configuration, ...]:
        """One single-task configuration per task of the base config."""
        return tuple(
            Configuration(f"{SINGLE_TASK_PREFIX}{task}", {**self.single_task, "tasks": [task]}, single_task=task)
            for task in self.tasks
        )

    def all_configurations(self) -> tuple[Configuration, ...]:
        return self.baselines() + self.configurations

    def train_config(self, configuration: Configuration, seed: int) -> TrainConfig:
        train, val = self.data_folders()
        values = {**self.base, **configuration.overrides}
        # task options per task: the configuration's over the base's, for the tasks this run has (a
        # single-task baseline keeps its own task's)
        tasks = values.get("tasks", _default("tasks"))
        base_options, own_options = (
            self.base.get("task_options") or {},
            configuration.overrides.get("task_options") or {},
        )
        values["task_options"] = {
            task: {**base_options.get(task, {}), **own_options.get(task, {})}
            for task in dict.fromkeys([*base_options, *own_options])
            if task in tasks
        }
        values.update(
            data=train,
            val_data=val,
            out=str(run_folder(self.out, configuration.name, seed)),
            seed=seed,
            name=f"{configuration.name}-seed{seed}",
        )
        return TrainConfig.from_mapping(values)

    def runs(self) -> list[RunSpec]:
        """Every run, seed by seed (so that an interrupted study has whole seeds done first)."""
        return [
            RunSpec(c.name, seed, self.train_config(c, seed)) for seed in self.seeds for c in self.all_configurations()
        ]


def run_folder(study: Path, configuration: str, seed: int) -> Path:
    return Path(study) / RUNS_DIR / configuration / f"seed{seed}"


def load_study(path: str | Path, out: str | None = None) -> StudyConfig:
    """Read and validate the whole study config; `out` overrides its `out`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: study config not found")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: cannot parse ({error})") from None
    return parse_study(values, str(path), out)


def parse_study(values: Any, source: str = "study config", out: str | None = None) -> StudyConfig:
    """The mapping a study file holds -> a validated StudyConfig; every error names `source`, the
    configuration and the field."""
    where = _Where(source)
    values = where.mapping(values, None)
    if values.get("format") != STUDY_FORMAT or values.get("version") != STUDY_VERSION:
        raise where.error(
            None,
            f"must start with format: {STUDY_FORMAT} and version: {STUDY_VERSION} "
            f"(got format {values.get('format')!r}, version {values.get('version')!r})",
        )
    where.known(values, TOP_LEVEL, None, "key")
    for required in ("data", "seeds", "configurations"):
        if required not in values:
            raise where.error(required, "missing")
    study_out = out if out is not None else values.get("out")
    if not isinstance(study_out, str) or not study_out:
        raise where.error("out", "the study folder: set out: DIR in the file or give --out DIR")

    seeds = values["seeds"]
    if not isinstance(seeds, list) or not all(_is_int(s) for s in seeds) or len(set(seeds)) != len(seeds):
        raise where.error("seeds", f"must be a list of distinct integers, got {seeds!r}")
    if len(seeds) < MIN_SEEDS:
        raise where.error("seeds", f"needs at least {MIN_SEEDS} seeds for a mean ± std, got {len(seeds)}")

    base = _task_entries(where, where.mapping(values.get("base") or {}, "base"), "base")
    where.overrides(base, "base", forbidden=SET_BY_STUDY)
    single_task = where.mapping(values.get("single_task") or {}, "single_task")
    where.overrides(single_task, "single_task", forbidden=SET_BY_STUDY + BUDGET + ("tasks",))
    tasks = base.get("tasks", _default("tasks"))
    if not tasks or len(set(tasks)) != len(tasks):
        raise where.error("base.tasks", f"must be distinct task names, got {tasks!r}")

    study = StudyConfig(
        source=source,
        out=Path(study_out),
        data=_data(where, values["data"]),
        seeds=tuple(seeds),
        base=base,
        single_task=single_task,
        configurations=_configurations(where, values["configurations"], tuple(tasks), base),
        latency=_latency(where, values.get("latency") or {}),
        latency_budget=_latency_budget(where, values.get("report") or {}),
    )
    for configuration in study.all_configurations():
        _check_runs(where, study, configuration)
    return study


def _configurations(
    where: _Where, entries: Any, base_tasks: tuple[str, ...], base: Mapping[str, Any]
) -> tuple[Configuration, ...]:
    if not isinstance(entries, list) or not entries:
        raise where.error("configurations", "must be a non-empty list of {name: ..., <training option>: ...}")
    named: list[Configuration] = []
    expansions: list[tuple[int, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        label = f"configurations[{index}]"
        entry = where.mapping(entry, label)
        if OTHER_BALANCERS in entry:
            if len(entry) != 1:
                raise where.error(label, f"{OTHER_BALANCERS} stands alone: {{{OTHER_BALANCERS}: {{overrides}}}}")
            shared = _task_entries(
                where, where.mapping(entry[OTHER_BALANCERS] or {}, f"{label}.{OTHER_BALANCERS}"), label
            )
            if "balancer" in shared or "balancer_options" in shared:
                raise where.error(f"{label}.{OTHER_BALANCERS}", "sets the balancer itself: remove balancer")
            where.overrides(shared, f"{label}.{OTHER_BALANCERS}", forbidden=SET_BY_STUDY + BUDGET)
            expansions.append((len(named), shared))
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise where.error(f"{label}.name", f"must be a folder name (letters, digits, . _ -), got {name!r}")
        if name.startswith(SINGLE_TASK_PREFIX):
            raise where.error(f"{label}.name", f"{name!r}: names starting {SINGLE_TASK_PREFIX!r} are the baselines'")
        overrides = _task_entries(where, {k: v for k, v in entry.items() if k != "name"}, f"configuration {name!r}")
        where.overrides(overrides, f"configuration {name!r}", forbidden=SET_BY_STUDY + BUDGET)
        named.append(Configuration(name, overrides))
    # Expanded after every named entry is known: "other" means no configuration names it explicitly.
    base_balancer = base.get("balancer", _default("balancer"))
    explicit = {c.overrides.get("balancer", base_balancer) for c in named}
    result = list(named)
    for position, shared in reversed(expansions):
        extra = [Configuration(b, {**shared, "balancer": b}) for b in BALANCERS if b not in explicit]
        result[position:position] = extra
    names = [c.name for c in result]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise where.error("configurations", f"names must be unique; {duplicates} appear more than once")
    for configuration in result:
        tasks = configuration.overrides.get("tasks", base_tasks)
        if not isinstance(tasks, list | tuple) or not tasks or not set(tasks) <= set(base_tasks):
            raise where.error(
                f"configuration {configuration.name!r}.tasks",
                f"must be some of the base tasks {list(base_tasks)} (their single-task baselines are the "
                f"reference), got {tasks!r}",
            )
    return tuple(result)


def _task_entries(where: _Where, values: dict[str, Any], field: str) -> dict[str, Any]:
    """`values` with each task written as a mapping ({type: people, nms_iou: 0.5}) made a name, its
    options moved to `task_options`, as `onepass train` reads a config file."""
    try:
        return split_task_entries(values)
    except ConfigError as error:
        raise where.error(field, str(error)) from None


def _check_runs(where: _Where, study: StudyConfig, configuration: Configuration) -> None:
    """Build the run's TrainConfig and its balancer: every option checked as `onepass train` would."""
    label = f"configuration {configuration.name!r}"
    try:
        config = study.train_config(configuration, study.seeds[0])
    except ConfigError as error:
        raise where.error(label, str(error)) from None
    try:
        build_balancer(config.balancer.name, list(config.model.tasks), **config.balancer.options)
    except ConfigError as error:
        raise where.error(f"{label}.balancer_options", str(error)) from None
    except TypeError as error:  # an option of the wrong type that the balancer's checks did not reach
        raise where.error(f"{label}.balancer_options", f"balancer {config.balancer.name!r}: {error}") from None


def _data(where: _Where, data: Any) -> SynthData | FolderData:
    data = where.mapping(data, "data")
    if "synth" in data:
        if len(data) != 1:
            raise where.error("data", "give either synth: {...} or train: DIR and val: DIR, not both")
        synth = where.mapping(data["synth"], "data.synth")
        fields = {f.name: f for f in dataclasses.fields(SynthData)}
        where.known(synth, tuple(fields), "data.synth", "option")
        for required in ("train", "val"):
            if required not in synth:
                raise where.error(f"data.synth.{required}", "missing (the number of scenes to render)")
        for key, value in synth.items():
            if key == "size":
                if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v >= 16 for v in value)):
                    raise where.error("data.synth.size", f"must be [H, W], each >= 16, got {value!r}")
            elif not (_is_int(value) or (value is None and key in ("val_seed", "workers"))):
                raise where.error(f"data.synth.{key}", f"must be an integer, got {value!r}")
            elif key in ("train", "val", "workers") and value is not None and value < 1:
                raise where.error(f"data.synth.{key}", f"must be at least 1, got {value}")
        return SynthData(**{**synth, "size": tuple(synth.get("size", SynthData.size))})
    where.known(data, ("train", "val"), "data", "key")
    for split in ("train", "val"):
        if not isinstance(data.get(split), str):
            raise where.error(f"data.{split}", "a dataset folder is needed (or give data: synth: {...})")
    return FolderData(data["train"], data["val"])


def _latency(where: _Where, values: Any) -> LatencyOptions:
    values = where.mapping(values, "latency")
    where.known(values, tuple(f.name for f in dataclasses.fields(LatencyOptions)), "latency", "option")
    for key, value in values.items():
        minimum = 0 if key == "warmup" else 1
        if not ((_is_int(value) and value >= minimum) or (key == "threads" and value is None)):
            raise where.error(f"latency.{key}", f"must be an integer >= {minimum}, got {value!r}")
    return LatencyOptions(**values)


def _latency_budget(where: _Where, values: Any) -> float:
    values = where.mapping(values, "report")
    where.known(values, ("latency_budget",), "report", "option")
    budget = values.get("latency_budget", 1.3)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget) or budget <= 0:
        raise where.error("report.latency_budget", f"must be a factor > 0 (e.g. 1.3), got {budget!r}")
    return float(budget)


class _Where:
    """Error messages that name the file and the field."""

    def __init__(self, source: str):
        self.source = source
        self.hints = {o.key: o.hint for o in training_options()}  # the flat keys of configs and `--set`

    def error(self, field: str | None, message: str) -> StudyError:
        return StudyError(f"{self.source}: {field}: {message}" if field else f"{self.source}: {message}")

    def mapping(self, value: Any, field: str | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(field, f"expected a mapping, got {type(value).__name__}")
        return value

    def known(self, values: Mapping[str, Any], valid: tuple[str, ...], field: str | None, kind: str) -> None:
        for key in values:
            if key not in valid:
                raise self.error(field, str(unknown_name_error(kind, str(key), list(valid))))

    def overrides(self, values: Mapping[str, Any], field: str, forbidden: tuple[str, ...]) -> None:
        """TrainConfig fields, each of its field's type; `forbidden` ones refused with the reason."""
        for key, value in values.items():
            if key in forbidden:
                raise self.error(f"{field}.{key}", _why_forbidden(key, field))
            if key not in self.hints:
                raise self.error(field, str(unknown_name_error("training option", str(key), list(self.hints))))
            hint = self.hints[key]
            if not _matches(value, hint):
                hint_text = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
                advice = ""
                if isinstance(value, str) and _matches(0.0, hint) and _parses_as_float(value):
                    advice = f" (YAML reads {value} as text: write it with a dot, e.g. {float(value)!r})"
                raise self.error(f"{field}.{key}", f"must be {hint_text}, got {value!r}{advice}")


def _why_forbidden(key: str, field: str) -> str:
    if key in SET_BY_STUDY:
        return "set by the study for each run (OUT/runs/<configuration>/seed<k>, the data, the seed); remove it"
    if key == "tasks":
        return "a single-task baseline's task is its own; remove tasks"
    return f"the training budget is the same for every run: set {key} in base, not in {field}"


def _default(field: str) -> Any:
    for option in training_options():
        if option.key == field:
            return option.default
    raise KeyError(field)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a TrainConfig annotation (lists stand for tuples)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_int(value) or isinstance(value, float)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key_hint) and _matches(v, value_hint) for k, v in value.items()
        )
    return True  # an annotation this check does not know: TrainConfig's own checks decide
