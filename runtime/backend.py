"""What every backend is: the `Backend` protocol, and `BackendUnavailable`, the one error a backend
raises when it cannot run here (no CUDA device, a library or provider not installed, a precision
it does not offer, no export of that precision in the package). `load(backend="auto")` skips
exactly those and says why; anything else (a stale or corrupt export) is a real error."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from onepass.errors import ConfigError


class BackendUnavailable(ConfigError):
    """This backend cannot run this package here; the message says what is missing and how to get it.

    A ConfigError, so the CLI prints it as one line."""


class Backend(Protocol):
    name: str

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 at the model's input size -> post-processed outputs by name."""


def cuda_index(device: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1."""
    index = device.partition(":")[2] or "0"
    if not device.startswith("cuda") or not index.isdigit():
        raise ConfigError(f"device {device!r}: expected cpu, cuda or cuda:N")
    return int(index)


def require_cuda_device(backend: str, device: str) -> None:
    """Refuse `device` unless it is a CUDA device that torch can see (the index exists)."""
    import torch

    if not device.startswith("cuda"):
        raise BackendUnavailable(f"{backend} backend: needs a CUDA device (asked for {device!r})")
    index = cuda_index(device)
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if not available or index >= count:
        raise BackendUnavailable(
            f"{backend} backend: device {device!r} is not here (CUDA available: {available}, CUDA devices: {count})"
        )
