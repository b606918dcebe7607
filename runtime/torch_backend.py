"""The PyTorch backend: runs the package's InferenceGraph eagerly (or compiled)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from onepass.errors import ConfigError
from onepass.models.inference_graph import InferenceGraph
from onepass.models.package import ModelPackage
from onepass.runtime.backend import BackendUnavailable, require_cuda_device

PRECISIONS = ("fp32", "bf16", "fp16")


class TorchBackend:
    """uint8 (N, H, W, 3) batches in, post-processed named numpy outputs out.

    channels_last is always on: on this project's CPUs it halves convolution time (DESIGN.md,
    "Known pitfalls"). `precision` picks autocast: bf16 pays on CPUs with AMX, fp16 on CUDA.
    """

    name = "torch"

    def __init__(self, package: ModelPackage, device: str = "cpu", precision: str = "fp32", compile: bool = False):
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"torch backend: unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})")
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"device {device!r}: expected cpu, cuda or cuda:N") from None
        if self.device.type == "cuda":
            require_cuda_device("torch", device)
        elif precision == "fp16":
            raise BackendUnavailable("torch backend: fp16 needs a CUDA device; on CPU use bf16 or fp32")
        self.precision = precision
        self.graph = InferenceGraph(package.load_model(self.device)).eval().to(memory_format=torch.channels_last)
        self._run = torch.compile(self.graph) if compile else self.graph

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        batch = torch.from_numpy(images).to(self.device, non_blocking=True)
        with self._autocast():
            outputs = self._run(batch)
        return {
            name: value.float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
            for name, value in outputs.items()
        }
