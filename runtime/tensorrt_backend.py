"""The TensorRT backend: a prebuilt engine (`onepass export MODEL --format tensorrt`), run by the
export stage's EngineRunner (`execute_async_v3` on a CUDA stream, outputs written into preallocated
torch tensors; batches larger than the engine's max batch run in slices).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from onepass.export import tensorrt_format
from onepass.runtime.backend import BackendUnavailable, RegisteredBackend, register_backend

if TYPE_CHECKING:
    import numpy as np

    from onepass.models.package import ModelPackage


@register_backend
class TensorRTBackend(RegisteredBackend):
    name = "tensorrt"
    precisions = tensorrt_format.PRECISIONS  # the engines `onepass export --format tensorrt` builds
    devices = ("cuda",)
    runs_from = "plan"

    @classmethod
    def file_name(cls, precision: str) -> str:
        return f"model.<gpu>.trt<version>.{precision}.plan"

    @classmethod
    def refusal(cls, package: ModelPackage | None, device: str, precision: str, **options: Any) -> str | None:
        reason = super().refusal(package, device, precision, **options)
        if reason is not None:
            return reason
        if importlib.util.find_spec("tensorrt") is None:  # the normal CUDA install has no TensorRT
            return f"tensorrt backend: {tensorrt_format.TENSORRT_MISSING}"
        return None  # the engine's file name needs TensorRT's version: looked up when the backend is built

    def __init__(self, package: ModelPackage, device: str = "cuda", precision: str = "fp32"):
        import torch

        from onepass.export.formats import ExportError
        from onepass.export.tensorrt import EngineRunner, import_tensorrt
        from onepass.models.package_exports import EngineMissing, find_engine

        try:
            trt = import_tensorrt()
        except ExportError as error:  # installed, but its libraries do not load here: not here, not broken
            raise BackendUnavailable(f"tensorrt backend: {error}") from None
        torch.cuda.set_device(torch.device(device))
        try:
            plan, self.info = find_engine(package, torch.cuda.get_device_name(device), trt.__version__, precision)
        except EngineMissing as error:
            raise BackendUnavailable(f"tensorrt backend: {error}") from None
        self.runner = EngineRunner(plan, self.info, device)
        self.max_batch = self.info.max_batch

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner(images)
