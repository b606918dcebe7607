"""TensorRT engines: a serialised plan built from the package's ONNX with the TensorRT Python API.

An engine only runs on the GPU model and TensorRT version that built it, so both are in its file
name (`model.<gpu>.trt<version>.<precision>.plan`) and in a sidecar JSON beside it (their names and
format: models/package_exports.py); the plan itself stays exactly as TensorRT wrote it.
`EngineRunner` runs a built engine: the export's parity check and the runtime's backend use it.

Precision comes from the ONNX, not from builder flags: TensorRT 11 removed `BuilderFlag.FP16` and
builds strongly typed networks only, so fp16 engines are built from `model.fp16.onnx` (the fp16
export) with a strongly typed network on 10.x and 11.x alike. int8 is not offered: the CPU int8
export uses asymmetric uint8 activations, which TensorRT's explicit quantisation does not take.

TensorRT is imported lazily: without it (or without a GPU), building fails with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from onepass.data.files import file_sha256
from onepass.export.formats import ExportError
from onepass.export.onnx import fp32_onnx
from onepass.export.tensorrt_format import DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE_GB, PRECISIONS, TENSORRT_MISSING
from onepass.models.package import ModelPackage, PackageError, atomic_path
from onepass.models.package_exports import (
    ENGINE_FORMAT,
    ENGINE_VERSION,
    ONNX_FILES,
    TIMING_CACHE_FILE,
    EngineInfo,
    engine_file,
    sidecar_path,
)


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise ExportError(TENSORRT_MISSING) from None
    except OSError as error:  # installed, but its CUDA libraries do not load (driver or CUDA version)
        raise ExportError(f"TensorRT is installed but cannot load its libraries here ({error})") from None
    return tensorrt


def build_engine(
    package: ModelPackage,
    precision: str = "fp32",
    max_batch: int = DEFAULT_MAX_BATCH,
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    device: int = 0,
) -> Path:
    """Build `model.<gpu>.trt<version>.<precision>.plan` (+ sidecar JSON) on CUDA device `device`."""
    if precision not in PRECISIONS:
        raise ExportError(f"TensorRT engines: precision {precision!r} is not offered (valid: {', '.join(PRECISIONS)})")
    if max_batch < 1:
        raise ExportError(f"--max-batch must be at least 1, got {max_batch}")
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise ExportError("TensorRT engines are built on an NVIDIA GPU, and torch sees no CUDA device here")
    torch.cuda.set_device(device)
    gpu_name = torch.cuda.get_device_name(device)
    onnx_path = fp32_onnx(package) if precision == "fp32" else package.path / ONNX_FILES[precision]
    if not onnx_path.is_file():
        raise ExportError(f"{onnx_path} not found: export it first with `onepass export {package.path} --half`")
    target = package.path / engine_file(gpu_name, trt.__version__, precision)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # 10.x: opt in; 11.x: always
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT's ONNX parser refused it ({errors})")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if precision == "fp32" and tf32 is not None:
        # TensorRT enables TF32 by default (10-bit mantissa products); an fp32 engine computes in fp32,
        # which is also what its parity gate against PyTorch fp32 on the CPU assumes
        config.clear_flag(tf32)
    height, width = package.config.input_size
    profile = builder.create_optimization_profile()
    optimum = min(8, max_batch)  # kernels are tuned for this batch; 1..max_batch all run
    profile.set_shape("image", (1, height, width, 3), (optimum, height, width, 3), (max_batch, height, width, 3))
    config.add_optimization_profile(profile)
    cache_path = package.path / TIMING_CACHE_FILE
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU is ignored, not fatal

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} (its log above says why)")
    _write_atomic(target, bytes(plan))
    _write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    info = EngineInfo(
        format=ENGINE_FORMAT,
        version=ENGINE_VERSION,
        gpu=gpu_name,
        tensorrt=trt.__version__,
        precision=precision,
        onnx_file=onnx_path.name,
        onnx_sha256=file_sha256(onnx_path),
        input_size=(height, width),
        max_batch=max_batch,
        outputs=tuple(spec.name for task in package.config.tasks for spec in task.output_specs()),
        model=package.config.to_json(),
    )
    _write_atomic(sidecar_path(target), json.dumps(asdict(info), indent=2).encode())
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(data)


class EngineRunner:
    """A built engine on a CUDA device: uint8 (N, H, W, 3) batches in, named outputs out, run with
    `execute_async_v3` on a CUDA stream into preallocated torch tensors. Batches larger than the
    engine's profile allows run in slices of its max batch. The export's parity check and the
    runtime's tensorrt backend both run engines through this."""

    def __init__(self, plan: Path, info: EngineInfo, device: str = "cuda"):
        import torch

        trt = import_tensorrt()
        self.torch = torch
        self.device = torch.device(device)
        torch.cuda.set_device(self.device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise PackageError(f"{plan}: TensorRT could not deserialise it (its log above says why)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        self.max_batch = info.max_batch
        height, width = info.input_size
        self.context.set_input_shape("image", (self.max_batch, height, width, 3))
        self.outputs: dict[str, torch.Tensor] = {}  # preallocated for max_batch; a batch uses the first rows
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
                shape = tuple(self.context.get_tensor_shape(name))
                self.outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
        self.input = torch.empty((self.max_batch, height, width, 3), dtype=torch.uint8, device=self.device)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
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
