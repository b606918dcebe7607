"""onepass.models: the task registry, encoders, decoders, architectures and the model package."""

from onepass.models.architectures import ARCHITECTURES
from onepass.models.inference_graph import InferenceGraph
from onepass.models.model import ModelConfig, MultiTaskModel
from onepass.models.package import ModelPackage, PackageError, open_package, save_package
from onepass.models.tasks import TASK_TYPES, Task, build_task

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
