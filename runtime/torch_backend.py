"""The PyTorch backend: runs the package's InferenceGraph eagerly (or compiled).

torch is imported when a backend is built: the registry's declarations are read by `onepass --help`.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import TYPE_CHECKING, Any

from onepass.runtime.backend import RegisteredBackend, device_kind, register_backend

if TYPE_CHECKING:
    import numpy as np

    from onepass.models.package import ModelPackage


@register_backend
class TorchBackend(RegisteredBackend):
    """uint8 (N, H, W, 3) batches in, post-processed named numpy outputs out.

    channels_last is always on: on this project's CPUs it halves convolution time (DESIGN.md,
    "Known pitfalls"). `precision` picks autocast: bf16 pays on CPUs with AMX, fp16 on CUDA.
    """

    name = "torch"
    precisions = ("fp32", "bf16", "fp16")
    devices = ("cpu", "cuda")
    runs_from = "weights"
    options = ("compile",)  # torch.compile the graph

    @classmethod
    def file_name(cls, precision: str) -> str:
        from onepass.models.package import WEIGHTS_FILE

        return WEIGHTS_FILE

    @classmethod
    def refusal(cls, package: ModelPackage | None, device: str, precision: str, **options: Any) -> str | None:
        reason = super().refusal(package, device, precision, **options)
        if reason is not None:
            return reason
        if precision == "fp16" and device_kind(device) == "cpu":
            return "torch backend: fp16 needs a CUDA device; on CPU use bf16 or fp32"
        if options.get("compile") and device_kind(device) == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
            return "torch backend: torch.compile on CPU needs a C++ compiler (none on PATH)"
        return None

    def __init__(self, package: ModelPackage, device: str = "cpu", precision: str = "fp32", compile: bool = False):
        import torch

        from onepass.models.inference_graph import FrameGraph, InferenceGraph

        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        model = package.load_model(self.device).eval().to(memory_format=torch.channels_last)
        self.graph = InferenceGraph(model).eval()
        self.frame_graph = FrameGraph(model).eval()  # the same weights: no memory of its own
        self.runs_frames = True
        self._run = torch.compile(self.graph) if compile else self.graph
        # frames come at any size: compiled with dynamic shapes, so a new size does not recompile
        self._run_frames = torch.compile(self.frame_graph, dynamic=True) if compile else self.frame_graph

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = self.torch.bfloat16 if self.precision == "bf16" else self.torch.float16
        return self.torch.autocast(self.device.type, dtype=dtype)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self._outputs(self._run, images)

    def run_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        return self._outputs(self._run_frames, frames)

    def _outputs(self, graph, images: np.ndarray) -> dict[str, np.ndarray]:
        with self.torch.inference_mode():
            batch = self.torch.from_numpy(images).to(self.device, non_blocking=True)
            with self._autocast():
                outputs = graph(batch)
            return {
                name: value.float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
                for name, value in outputs.items()
            }
