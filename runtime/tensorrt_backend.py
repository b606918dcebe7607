"""The TensorRT backend: a prebuilt engine (`onepass export MODEL --format tensorrt`), run with
`execute_async_v3` on a CUDA stream, outputs written into preallocated torch tensors.

Batches larger than the engine's profile allows are run in slices of `max_batch`.
"""

from __future__ import annotations

import numpy as np

from onepass.export.onnx import ExportError
from onepass.export.tensorrt import PRECISIONS, EngineMissing, find_engine, import_tensorrt
from onepass.models.package import ModelPackage, PackageError
from onepass.runtime.backend import BackendUnavailable, require_cuda_device


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, package: ModelPackage, device: str = "cuda", precision: str = "fp32"):
        import torch

        require_cuda_device("tensorrt", device)
        if precision not in PRECISIONS:
            raise BackendUnavailable(
                f"tensorrt backend: precision {precision!r} is not offered (valid: {', '.join(PRECISIONS)})"
            )
        try:
            trt = import_tensorrt()
        except ExportError as error:  # the normal CUDA install has no TensorRT: not here, not broken
            raise BackendUnavailable(f"tensorrt backend: {error}") from None
        self.torch = torch
        self.device = torch.device(device)
        torch.cuda.set_device(self.device)
        try:
            plan, self.info = find_engine(package, torch.cuda.get_device_name(self.device), trt.__version__, precision)
        except EngineMissing as error:
            raise BackendUnavailable(f"tensorrt backend: {error}") from None
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise PackageError(f"{plan}: TensorRT could not deserialise it (its log above says why)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        self.max_batch = self.info.max_batch
        height, width = self.info.input_size
        self.context.set_input_shape("image", (self.max_batch, height, width, 3))
        self.outputs: dict[str, torch.Tensor] = {}  # preallocated for max_batch; a batch uses the first rows
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
                shape = tuple(self.context.get_tensor_shape(name))
                self.outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
        self.input = torch.empty((self.max_batch, height, width, 3), dtype=torch.uint8, device=self.device)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        parts = [self._run_slice(images[i : i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.outputs}

    def _run_slice(self, images: np.ndarray) -> dict[str, np.ndarray]:
        n = len(images)
        with self.torch.cuda.stream(self.stream):
            self.input[:n].copy_(self.torch.from_numpy(np.ascontiguousarray(images)), non_blocking=True)
            self.context.set_input_shape("image", tuple(self.input[:n].shape))
            self.context.set_tensor_address("image", self.input.data_ptr())
            for name, buffer in self.outputs.items():
                self.context.set_tensor_address(name, buffer.data_ptr())  # rows 0..n-1 are this batch's
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (its log above says why)")
            results = {name: buffer[:n].to("cpu", non_blocking=True) for name, buffer in self.outputs.items()}
        self.stream.synchronize()
        return {name: value.numpy() for name, value in results.items()}
