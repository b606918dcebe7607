"""TensorRT engines: a serialised plan built from the package's ONNX with the TensorRT Python API.

An engine only runs on the GPU model and TensorRT version that built it, so both are in its file
name (`model.<gpu>.trt<version>.<precision>.plan`) and in a sidecar JSON beside it; the plan
itself stays exactly as TensorRT wrote it.

Precision comes from the ONNX, not from builder flags: TensorRT 11 removed `BuilderFlag.FP16` and
builds strongly typed networks only, so fp16 engines are built from `model.fp16.onnx` (the fp16
export) with a strongly typed network on 10.x and 11.x alike. int8 is not offered: the CPU int8
export uses asymmetric uint8 activations, which TensorRT's explicit quantisation does not take.

TensorRT is imported lazily: without it (or without a GPU), building fails with a clear message.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onepass.export.onnx import ONNX_FILES, ExportError, fp32_onnx
from onepass.models.package import ModelPackage, PackageError, atomic_path, file_sha256

ENGINE_FORMAT = "onepass-tensorrt-engine"
ENGINE_VERSION = 1
PRECISIONS = ("fp32", "fp16")
DEFAULT_MAX_BATCH = 32
DEFAULT_WORKSPACE_GB = 4.0
TIMING_CACHE_FILE = "trt-timing.cache"  # reused by every later build on this package (seconds, not minutes)


class EngineMissing(PackageError):
    """The package has no engine for this GPU, TensorRT version and precision (yet)."""


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise ExportError(
            'TensorRT is not installed: on a machine with an NVIDIA GPU, `pip install ".[gpu]"` '
            "(TensorRT 10.x or 11.x; see the README's GPU install)"
        ) from None
    except OSError as error:  # installed, but its CUDA libraries do not load (driver or CUDA version)
        raise ExportError(f"TensorRT is installed but cannot load its libraries here ({error})") from None
    return tensorrt


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3': safe in a file name, still readable."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def engine_file(gpu_name: str, tensorrt_version: str, precision: str) -> str:
    return f"model.{gpu_slug(gpu_name)}.trt{tensorrt_version}.{precision}.plan"


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar JSON (`<plan>.json`): what the plan was built from, on what, for what shapes."""

    format: str
    version: int
    gpu: str
    tensorrt: str
    precision: str
    onnx_file: str
    onnx_sha256: str
    input_size: tuple[int, int]
    max_batch: int
    outputs: tuple[str, ...]
    model: dict

    @classmethod
    def read(cls, path: Path) -> EngineInfo:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise PackageError(f"{path}: not a readable engine description ({error})") from None
        if data.get("format") != ENGINE_FORMAT or data.get("version") != ENGINE_VERSION:
            raise PackageError(f"{path}: not an onepass engine description of version {ENGINE_VERSION}")
        try:
            return cls(**{**data, "input_size": tuple(data["input_size"]), "outputs": tuple(data["outputs"])})
        except TypeError as error:
            raise PackageError(f"{path}: engine description has missing or unknown fields ({error})") from None


def find_engine(package: ModelPackage, gpu_name: str, tensorrt_version: str, precision: str) -> tuple[Path, EngineInfo]:
    """The package's engine for this GPU, TensorRT version and precision, checked against the package."""
    plan = package.path / engine_file(gpu_name, tensorrt_version, precision)
    flag = " --half" if precision == "fp16" else ""
    if not plan.is_file():
        built = sorted(p.name for p in package.path.glob("model.*.plan"))
        raise EngineMissing(
            f"no TensorRT engine in {package.path} for {gpu_name} with TensorRT {tensorrt_version} at {precision} "
            f"(found: {', '.join(built) or 'none'}); build it with `onepass export {package.path} --format tensorrt{flag}`"
        )
    info = EngineInfo.read(plan.with_name(plan.name + ".json"))
    onnx_path = package.path / info.onnx_file
    if not package.config.same_network_as(info.model) or (
        onnx_path.is_file() and file_sha256(onnx_path) != info.onnx_sha256
    ):
        raise PackageError(
            f"{plan} was built from another version of this model; rebuild it with "
            f"`onepass export {package.path} --format tensorrt{flag}`"
        )
    return plan, info


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
    _write_atomic(target.with_name(target.name + ".json"), json.dumps(asdict(info), indent=2).encode())
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(data)
