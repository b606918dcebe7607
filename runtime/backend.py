"""What every backend is, and the registry of them.

A backend is a class registered with `@register_backend` that declares what it runs (precisions,
devices, the package file it runs from, its extra options) and `refusal(package, device, precision)`:
why it cannot run a package here, or None. `onepass.load` (its `auto` too), the bench planner and the
CLIs ask the registry, so a rule like "fp16 autocast needs CUDA" is written once, in its backend.

`BackendUnavailable` is the one error a backend raises when it cannot run here (no CUDA device, a
library or provider not installed, a precision it does not offer, no export of that precision in
the package). `load(backend="auto")` skips exactly those and says why; anything else (a stale or
corrupt export) is a real error.

Imports nothing heavy: the `onepass` parser reads the registry (bench's formats table).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from onepass.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from onepass.models.package import ModelPackage


class BackendUnavailable(ConfigError):
    """This backend cannot run this package here; the message says what is missing and how to get it.

    A ConfigError, so the CLI prints it as one line."""


class Backend(Protocol):
    """What a Predictor runs: a registered backend, or anything with the same members (the server's
    batching wraps one). `runs_frames` and `run_frames` are optional: without them (or with
    `runs_frames` False) the Predictor resizes frames and maps itself, as before the frame-size graph."""

    name: str

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 at the model's input size -> post-processed outputs by name."""


FRAMES_MEMBER = "runs_frames"  # a backend's flag: True when `run_frames` runs the frame-size graph


def runs_frames(backend: Backend) -> bool:
    """Whether `backend` takes camera frames at any size and returns the maps at their size."""
    return bool(getattr(backend, FRAMES_MEMBER, False))


class RegisteredBackend(ABC):
    """The base of every registered backend: its declarations, the refusal rules they imply, and
    `open`, which refuses (BackendUnavailable) or builds one."""

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    devices: ClassVar[tuple[str, ...]]  # "cpu", "cuda"
    runs_from: ClassVar[str]  # the kind of package file it needs: "weights", "onnx" or "plan"
    options: ClassVar[tuple[str, ...]] = ()  # keyword options of its constructor beyond device and precision

    @classmethod
    @abstractmethod
    def file_name(cls, precision: str) -> str:
        """The package file it runs at `precision` (a pattern where the name depends on the machine)."""

    @classmethod
    def refusal(cls, package: ModelPackage | None, device: str, precision: str, **options: Any) -> str | None:
        """Why this backend cannot run `package` at `precision` on `device` here, or None if it can.

        Checked without loading anything heavy: the declarations, the CUDA device, what is installed,
        and (with a package; None asks about this machine only) the files it runs from. Building the
        backend may still find what only loading shows (a library that does not load) and raise
        BackendUnavailable. A malformed device is a ConfigError, not a refusal."""
        kind = device_kind(device)
        if precision not in cls.precisions:
            return f"{cls.name} backend: unknown precision {precision!r} (valid: {', '.join(cls.precisions)})"
        if kind not in cls.devices:
            needs = "a CUDA device" if cls.devices == ("cuda",) else f"one of the devices {', '.join(cls.devices)}"
            return f"{cls.name} backend: needs {needs} (asked for {device!r})"
        return cuda_refusal(cls.name, device) if kind == "cuda" else None

    @classmethod
    def open(cls, package: ModelPackage, device: str, precision: str, **options: Any) -> RegisteredBackend:
        """The backend for `package`, or BackendUnavailable saying why it cannot run here."""
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            raise ConfigError(
                f"{cls.name} backend: takes no option {', '.join(unknown)} (its options: {', '.join(cls.options) or 'none'})"
            )
        reason = cls.refusal(package, device, precision, **options)
        if reason is not None:
            raise BackendUnavailable(reason)
        return cls(package, device=device, precision=precision, **options)

    runs_frames: bool = False  # an instance sets it when it has the frame-size graph for its package

    @abstractmethod
    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 at the model's input size -> post-processed outputs by name."""

    def run_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 frames of any one size -> outputs at (H, W), resized in the frame-size graph
        (models/inference_graph.py's FrameGraph). Only where `runs_frames` is True."""
        raise NotImplementedError(f"{self.name} backend: no frame-size graph for this package")

    @classmethod
    def sharing_options(cls) -> dict[str, Any]:
        """The constructor options that open it already sharing the cores (`sharing_cores`), so that a
        process which knows it will share them builds one session, not two: none unless it spins."""
        return {}

    def sharing_cores(self) -> RegisteredBackend:
        """This backend, or a copy of it whose threads leave the CPU's cores to the process's other
        threads between operators: for a process where other work runs beside inference (the server's
        request threads, `onepass predict`'s readers and writers). Only backends whose idle threads
        spin (onnxruntime's, on the CPU) return a copy."""
        return self


BACKEND_TYPES: dict[str, type[RegisteredBackend]] = {}  # in registration order: the order `auto` tries them


def register_backend(cls: type[RegisteredBackend]) -> type[RegisteredBackend]:
    if cls.name in BACKEND_TYPES:
        raise ValueError(f"backend {cls.name!r} registered twice")
    BACKEND_TYPES[cls.name] = cls
    return cls


def device_kind(device: str) -> str:
    """'cpu' -> 'cpu'; 'cuda', 'cuda:1' -> 'cuda'; anything else is a ConfigError."""
    if device != "cpu":
        cuda_index(device)
    return "cpu" if device == "cpu" else "cuda"


def cuda_index(device: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1."""
    index = device.partition(":")[2] or "0"
    if not device.startswith("cuda") or not index.isdigit() or device.partition(":")[0] != "cuda":
        raise ConfigError(f"device {device!r}: expected cpu, cuda or cuda:N")
    return int(index)


def cuda_refusal(backend: str, device: str) -> str | None:
    """Why `device` is not a CUDA device that torch can see here (the index must exist), or None."""
    import torch

    index = cuda_index(device)
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if not available or index >= count:
        return f"{backend} backend: device {device!r} is not here (CUDA available: {available}, CUDA devices: {count})"
    return None
