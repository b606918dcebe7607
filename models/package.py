"""The model package: one self-describing directory (DESIGN.md, "The model package").

```
my-model/
  onepass.json          format + version, name, the ModelConfig, training provenance
  weights.safetensors   the state dict (never pickle)
  metrics.json          evaluation results and the data they came from (optional)
```
Later stages add files (model.onnx, engines); `files()` lists whatever is there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import json
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from onepass.errors import ConfigError, UserError
from onepass.models.model import ModelConfig, MultiTaskModel

PACKAGE_FORMAT = "onepass-model"
PACKAGE_VERSION = 1
CONFIG_FILE = "onepass.json"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.json"
METRICS_FORMAT = "onepass-metrics"
METRICS_VERSION = 1


class PackageError(UserError, ValueError):
    """A model package is missing, incomplete or of an unknown version; the message says which file."""


def default_package_path() -> Path:
    """The small model shipped with onepass (trained by `scripts/train_default_model.sh`)."""
    return Path(str(importlib.resources.files("onepass"))) / "default_model"


def resolve_package_path(path: str | os.PathLike | None) -> Path:
    """`None` or "default" -> the shipped model; anything else is a package directory."""
    if path is None or str(path) == "default":
        return default_package_path()
    return Path(path)


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    name: str
    version: str
    config: ModelConfig
    training: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any] | None:
        path = self.path / METRICS_FILE
        if not path.is_file():
            return None
        data = _read_json(path)
        if data.get("format") != METRICS_FORMAT or data.get("version") != METRICS_VERSION:
            raise PackageError(f"{path}: not an onepass metrics file of version {METRICS_VERSION}")
        return data

    def parameter_count(self) -> int:
        """Learnable parameters of the network (each shared tensor once), as `onepass info`, the bench
        and the README state them. BatchNorm's running statistics are buffers, not parameters: the
        weights file holds them too, so it holds more numbers than this (1.81 M against the
        shipped model's 1.79 M)."""
        return sum(p.numel() for p in MultiTaskModel(self.config).parameters())

    def files(self) -> dict[str, int]:
        """File name -> size in bytes, for every file in the package directory."""
        return {p.name: p.stat().st_size for p in sorted(self.path.iterdir()) if p.is_file()}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PACKAGE_FORMAT,
            "format_version": PACKAGE_VERSION,
            "name": self.name,
            "version": self.version,
            "model": self.config.to_json(),
            "training": self.training,
        }

    def load_model(self, device: str | torch.device = "cpu") -> MultiTaskModel:
        """Build the network from the config and load its weights, in eval mode."""
        weights_path = self.path / WEIGHTS_FILE
        if not weights_path.is_file():
            raise PackageError(f"{weights_path}: missing; a model package needs its weights")
        try:
            state = load_file(weights_path, device=str(device))
        except (SafetensorError, OSError) as error:
            raise PackageError(f"{weights_path}: not a readable safetensors file ({error})") from None
        # never from pretrained weights (a download): these weights replace them; see ModelConfig.pretrained
        model = MultiTaskModel(dataclasses.replace(self.config, pretrained=False))
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or reshaped:
            raise PackageError(
                f"{weights_path}: weights do not match the architecture in {CONFIG_FILE} "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shape {reshaped[:3]})"
            )
        model.load_state_dict(state)
        return model.to(device).eval()


def open_package(path: str | os.PathLike | None) -> ModelPackage:
    """Read and validate a package's onepass.json (weights are read by `load_model`)."""
    root = resolve_package_path(path)
    if not root.is_dir():
        raise PackageError(f"{root}: not a model package directory")
    data = _read_json(root / CONFIG_FILE)
    if data.get("format") != PACKAGE_FORMAT:
        raise PackageError(f"{root / CONFIG_FILE}: 'format' must be {PACKAGE_FORMAT!r}")
    if data.get("format_version") != PACKAGE_VERSION:
        raise PackageError(
            f"{root / CONFIG_FILE}: package format version {data.get('format_version')!r} is not supported "
            f"by this onepass (it reads version {PACKAGE_VERSION}); upgrade onepass or re-export the package"
        )
    try:
        config = ModelConfig.from_json(data["model"])
    except (KeyError, TypeError, ConfigError) as error:
        raise PackageError(f"{root / CONFIG_FILE}: invalid 'model' section ({error})") from None
    training = data.get("training", {})
    if not isinstance(training, dict):
        raise PackageError(f"{root / CONFIG_FILE}: 'training' must be an object (the training provenance)")
    # optional (version 1 packages without it read as before): which data chose the tasks' decision
    # settings, and each task's choice (onepass.train.calibrate)
    calibration = training.get("calibration")
    if calibration is not None and not (
        isinstance(calibration, dict)
        and isinstance(calibration.get("data"), dict)
        and isinstance(calibration.get("tasks"), dict)
    ):
        raise PackageError(
            f"{root / CONFIG_FILE}: 'training.calibration' must be an object with 'data' and 'tasks' objects "
            "(calibrate the package again with `onepass calibrate`)"
        )
    return ModelPackage(root, str(data.get("name", root.name)), str(data.get("version", "0")), config, training)


def save_package(
    path: str | os.PathLike,
    model: MultiTaskModel,
    name: str,
    version: str = "1",
    training: Mapping[str, Any] | None = None,
) -> ModelPackage:
    """Write onepass.json and weights.safetensors (each to a temporary name, then renamed)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    package = ModelPackage(root, name, version, model.config, dict(training or {}))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(root / WEIGHTS_FILE) as temporary:
        save_file(state, temporary, metadata={"format": PACKAGE_FORMAT})
    write_json_atomic(root / CONFIG_FILE, package.to_json())
    return package


def write_package_config(package: ModelPackage) -> None:
    """Rewrite a package's onepass.json from `package` (its config or provenance changed; the weights did
    not, so they stay as they are)."""
    write_json_atomic(package.path / CONFIG_FILE, package.to_json())


def write_metrics(
    path: str | os.PathLike,
    metrics: Mapping[str, Mapping[str, float]],
    data: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    *,
    model: str | None = None,
    delta_mtl: float | None = None,
) -> None:
    """The one writer of the metrics document, a package's metrics.json and `onepass eval`'s reports
    alike: {task: {metric: value}}, the evaluation data it came from ({"path", "images", ...}),
    baselines scored on the same data ({"trivial": {task: {metric: value}}, "single-task": ...}), and
    for a report the package it scored and Δ_MTL against its single-task baselines.

    A metric the data leaves undefined (NaN: no true pixels of a kind, nobody to find) is left out, so
    the document is strict JSON; anything else non-finite is an error."""

    def defined(values: Mapping[str, float]) -> dict[str, float]:
        return {name: value for name, value in values.items() if not (isinstance(value, float) and math.isnan(value))}

    document: dict[str, Any] = {"format": METRICS_FORMAT, "version": METRICS_VERSION}
    if model is not None:
        document["model"] = model
    document["data"] = dict(data)
    document["metrics"] = {k: defined(v) for k, v in metrics.items()}
    document["baselines"] = {k: {t: defined(m) for t, m in v.items()} for k, v in (baselines or {}).items()}
    if delta_mtl is not None and not math.isnan(delta_mtl):
        document["delta_mtl"] = delta_mtl
    write_json_atomic(Path(path), document, strict=True)


def save_metrics(
    package_path: str | os.PathLike,
    metrics: Mapping[str, Mapping[str, float]],
    data: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> None:
    """The package's metrics.json (`write_metrics`)."""
    write_metrics(Path(package_path) / METRICS_FILE, metrics, data, baselines)


def write_json_atomic(path: Path, data: Any, strict: bool = False) -> None:
    """`data` as indented JSON, written atomically; `strict`: NaN and infinities are a ValueError."""
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps(data, indent=2, allow_nan=not strict) + "\n")


@contextlib.contextmanager
def atomic_path(path: Path, temp_dir: Path | None = None) -> Iterator[str]:
    """A temporary file beside `path` (or in `temp_dir`, on the same filesystem), renamed over it only
    if the block succeeds: a reader never sees half a file, and a failure leaves the old one in place."""
    temporary, created = _new_file(path.name, temp_dir or path.parent)
    try:
        yield temporary
        # Created 0666 less the umask, the mode any other new file gets here; a writer that replaced the
        # file with one of its own (safetensors makes 0600) gets that mode given back. The umask is read
        # only then: reading /proc for every file was 40 % of `onepass predict`'s writing at 128x160.
        if os.stat(temporary).st_ino != created:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _new_file(name: str, folder: Path) -> tuple[str, int]:
    """A new empty file `.NAME.XXXXXXXX` in `folder`, made with mode 0666 (the kernel applies the umask),
    never an existing one (O_EXCL): its path and its inode."""
    for _ in range(100):
        candidate = os.path.join(folder, f".{name}.{secrets.token_hex(4)}")
        try:
            handle = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            return candidate, os.fstat(handle).st_ino
        finally:
            os.close(handle)
    raise FileExistsError(f"{folder}: no free temporary name for {name} after 100 tries")


def _umask() -> int:
    """The process's umask: from /proc on Linux, since os.umask can only read it by setting it, which
    would briefly change it for every other thread of the process."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PackageError(f"{path}: missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PackageError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise PackageError(f"{path}: expected a JSON object")
    return data
