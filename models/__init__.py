"""onepass.models: the task registry, encoders, decoders, architectures and the model package.

The names below are imported on first use, so that importing a light submodule (models/cli.py, which
`onepass --help` imports) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepass.models.architectures import ARCHITECTURES
    from onepass.models.inference_graph import InferenceGraph
    from onepass.models.model import ModelConfig, MultiTaskModel
    from onepass.models.package import ModelPackage, PackageError, open_package, save_package
    from onepass.models.tasks import TASK_TYPES, Task, build_task

_HOMES = {
    "ARCHITECTURES": "onepass.models.architectures",
    "InferenceGraph": "onepass.models.inference_graph",
    "ModelConfig": "onepass.models.model",
    "MultiTaskModel": "onepass.models.model",
    "ModelPackage": "onepass.models.package",
    "PackageError": "onepass.models.package",
    "open_package": "onepass.models.package",
    "save_package": "onepass.models.package",
    "TASK_TYPES": "onepass.models.tasks",
    "Task": "onepass.models.tasks",
    "build_task": "onepass.models.tasks",
}
__all__ = [
    "ARCHITECTURES",
    "TASK_TYPES",
    "InferenceGraph",
    "ModelConfig",
    "ModelPackage",
    "MultiTaskModel",
    "PackageError",
    "Task",
    "build_task",
    "open_package",
    "save_package",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'onepass.models' has no attribute {name!r}")
