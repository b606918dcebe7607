"""onepass.runtime: one Predictor API over the inference backends.

Importing this package registers the built-in backends (runtime/backend.py), in the order `auto` tries
them; each imports its engine only when it is built, so the registry is cheap to read. The Predictor
(numpy, Pillow, torch) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# isort: off
from onepass.runtime import torch_backend, onnxruntime_backend, tensorrt_backend  # noqa: F401  (registers them)

# isort: on
from onepass.runtime.backend import BACKEND_TYPES, BackendUnavailable

if TYPE_CHECKING:
    from onepass.runtime.predictor import Predictor, load

__all__ = ["BACKEND_TYPES", "BackendUnavailable", "Predictor", "load"]


def __getattr__(name: str) -> Any:
    if name in ("Predictor", "load"):
        from onepass.runtime import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'onepass.runtime' has no attribute {name!r}")
