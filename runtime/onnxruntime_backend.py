"""The ONNX Runtime backend: runs the package's exported graph (model.onnx, .fp16.onnx or .int8.onnx).

Providers come from what this onnxruntime build offers: on a CUDA device the TensorRT EP (fp16,
engine cache in the package directory), then the CUDA EP, then the CPU; on the CPU, the CPU EP
with one intra-op thread per core. On CUDA, inputs and outputs go through IO binding, so the
copies are explicit and happen once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from onepass.export.onnx import METADATA_KEY, ONNX_FILES, WEIGHTS_KEY
from onepass.models.package import WEIGHTS_FILE, ModelPackage, PackageError, file_sha256
from onepass.runtime.backend import BackendUnavailable, cuda_index, require_cuda_device

PRECISIONS = ("fp32", "fp16", "int8")
TRT_CACHE_DIR = "trt-cache"  # TensorRT EP engines, beside the model they were built from


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def providers_for(device: str, package_path: Path, precision: str) -> list[str | tuple[str, dict]]:
    """The provider list for a device, from the providers this onnxruntime build has."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    require_cuda_device("onnxruntime", device)
    index = cuda_index(device)
    chosen: list[str | tuple[str, dict]] = []
    if "TensorrtExecutionProvider" in available:
        cache = package_path / TRT_CACHE_DIR
        chosen.append(
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": index,
                    "trt_fp16_enable": precision != "fp32",  # an fp32 request stays fp32: refuse, don't downgrade
                    "trt_int8_enable": False,  # int8 comes from the QDQ nodes of model.int8.onnx
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache),
                },
            )
        )
    if "CUDAExecutionProvider" in available:
        # use_tf32 defaults to on (10-bit mantissa products on Ampere and later): fp32 stays fp32, and so
        # meets the fp32 parity limits against PyTorch on the CPU
        chosen.append(("CUDAExecutionProvider", {"device_id": index, "use_tf32": 0}))
    if not chosen:
        raise BackendUnavailable(
            f"onnxruntime backend: device {device!r} needs onnxruntime-gpu (this onnxruntime has only "
            f"{', '.join(available)}); see the README's GPU install"
        )
    return [*chosen, "CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """uint8 (N, H, W, 3) batches in, the exported graph's named outputs out."""

    name = "onnxruntime"

    def __init__(
        self,
        package: ModelPackage,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        spinning: bool = True,
    ):
        try:
            import onnxruntime
        except ImportError as error:
            raise BackendUnavailable(f"onnxruntime backend: onnxruntime does not import here ({error})") from None

        if precision not in PRECISIONS:
            raise BackendUnavailable(
                f"onnxruntime backend: unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})"
            )
        self.path = package.path / ONNX_FILES[precision]
        if not self.path.is_file():
            flag = {"fp32": "", "fp16": " --half", "int8": " --int8"}[precision]
            raise BackendUnavailable(
                f"{self.path} not found: export it first with `onepass export {package.path}{flag}`"
            )
        self.device = device
        self.precision = precision
        self._ort_value = onnxruntime.OrtValue  # IO binding on CUDA: inputs are bound as device values
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.log_severity_level = 3  # errors only: the TensorRT EP is chatty
        # Spinning threads pick up each operator's work sooner (best latency) but burn the CPU cores
        # that other threads of the process (a server's request threads) need; see serve/service.py.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        providers = providers_for(device, package.path, precision)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for a corrupt file
            raise PackageError(f"{self.path}: onnxruntime cannot load it ({error})") from error
        self.providers = self.session.get_providers()
        if device != "cpu" and self.providers == ["CPUExecutionProvider"]:
            # onnxruntime falls back to the CPU when its CUDA libraries (cuDNN, cuBLAS) fail to load;
            # a CUDA device was asked for: refuse, don't silently run on the CPU
            raise BackendUnavailable(
                f"onnxruntime backend: its GPU providers did not start on {device!r} (onnxruntime's log says why; "
                "usually CUDA or cuDNN libraries that onnxruntime-gpu cannot find)"
            )
        self._check_exported_from(package)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check_exported_from(self, package: ModelPackage) -> None:
        """An export of another model, or of this one before it was retrained, is refused."""
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise PackageError(f"{self.path}: no {METADATA_KEY} in its metadata; not exported by onepass")
        if not package.config.same_network_as(json.loads(metadata[METADATA_KEY]).get("model")):
            stale = "a different model configuration than"
        elif metadata.get(WEIGHTS_KEY) != file_sha256(package.path / WEIGHTS_FILE):
            stale = "other weights than"
        else:
            return
        raise PackageError(
            f"{self.path} was exported from {stale} {package.path}; export it again with `onepass export {package.path}`"
        )

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(images)
        if self.device == "cpu":
            return dict(zip(self.output_names, self.session.run(None, {"image": images}), strict=True))
        index = cuda_index(self.device)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("image", self._ort_value.ortvalue_from_numpy(images, "cuda", index))
        for name in self.output_names:
            binding.bind_output(name, "cuda", index)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))
