"""The ONNX Runtime backend: runs the package's exported graph (model.onnx, .fp16.onnx or .int8.onnx).

Providers come from what this onnxruntime build offers: on a CUDA device the TensorRT EP (fp16,
engine cache in the package directory), then the CUDA EP, then the CPU; on the CPU, the CPU EP
with one intra-op thread per core. On CUDA, inputs and outputs go through IO binding, so the
copies are explicit and happen once.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepass.runtime.backend import BackendUnavailable, RegisteredBackend, cuda_index, device_kind, register_backend

if TYPE_CHECKING:
    import numpy as np

    from onepass.models.package import ModelPackage

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")  # what a CUDA device needs, either


def providers_for(device: str, package_path: Path, precision: str) -> list[str | tuple[str, dict]]:
    """The provider list for a device, from the providers this onnxruntime build has."""
    import onnxruntime

    from onepass.models.package_exports import TRT_CACHE_DIR

    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
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
    return [*chosen, "CPUExecutionProvider"]


@register_backend
class OnnxRuntimeBackend(RegisteredBackend):
    """uint8 (N, H, W, 3) batches in, the exported graph's named outputs out."""

    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")
    devices = ("cpu", "cuda")
    runs_from = "onnx"
    options = ("threads", "spinning")

    @classmethod
    def file_name(cls, precision: str) -> str:
        from onepass.models.package_exports import ONNX_FILES

        return ONNX_FILES[precision]

    @classmethod
    def refusal(cls, package: ModelPackage | None, device: str, precision: str, **options: Any) -> str | None:
        reason = super().refusal(package, device, precision, **options)
        if reason is not None:
            return reason
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime backend: onnxruntime is not installed (pip install onnxruntime)"
        if device_kind(device) == "cuda":
            import onnxruntime

            available = onnxruntime.get_available_providers()
            if not set(GPU_PROVIDERS) & set(available):
                return (
                    f"onnxruntime backend: device {device!r} needs onnxruntime-gpu (this onnxruntime has only "
                    f"{', '.join(available)}); see the README's GPU install"
                )
        if package is not None and not (package.path / cls.file_name(precision)).is_file():
            flag = {"fp32": "", "fp16": " --half", "int8": " --int8"}[precision]
            return (
                f"{package.path / cls.file_name(precision)} not found: export it first with "
                f"`onepass export {package.path}{flag}`"
            )
        return None

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

        from onepass.models.package_exports import FRAME_ONNX_FILE

        self.path = package.path / self.file_name(precision)
        self.device = device
        self.precision = precision
        self.threads, self.spinning = threads, spinning
        self._ort_value = onnxruntime.OrtValue  # IO binding on CUDA: inputs are bound as device values
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.log_severity_level = 3  # errors only: the TensorRT EP is chatty
        # Spinning threads pick up each operator's work sooner (best latency) but burn the CPU cores
        # that other threads of the process (a server's request threads) need; see serve/service.py.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self._options, self._providers = options, providers_for(device, package.path, precision)
        self.package = package
        self.session = self._session(self.path)
        self.providers = self.session.get_providers()
        if device != "cpu" and self.providers == ["CPUExecutionProvider"]:
            # onnxruntime falls back to the CPU when its CUDA libraries (cuDNN, cuBLAS) fail to load;
            # a CUDA device was asked for: refuse, don't silently run on the CPU
            raise BackendUnavailable(
                f"onnxruntime backend: its GPU providers did not start on {device!r} (onnxruntime's log says why; "
                "usually CUDA or cuDNN libraries that onnxruntime-gpu cannot find)"
            )
        self.output_names = [o.name for o in self.session.get_outputs()]
        # The frame-size graph is fp32 only (model.frame.onnx, `onepass export --frame`); a package
        # without it runs as before: the Predictor resizes frames and maps in Python.
        self.frame_path = package.path / FRAME_ONNX_FILE
        self.runs_frames = precision == "fp32" and self.frame_path.is_file()

    def _session(self, path: Path):
        """An onnxruntime session of one of the package's graphs, checked to be exported from it."""
        import onnxruntime

        from onepass.models.package import PackageError
        from onepass.models.package_exports import check_exported_from

        try:
            session = onnxruntime.InferenceSession(str(path), self._options, providers=self._providers)
        except Exception as error:  # onnxruntime raises its own exception types for a corrupt file
            raise PackageError(f"{path}: onnxruntime cannot load it ({error})") from error
        # an export of another model, or of this one before it was retrained, is refused
        check_exported_from(self.package, path, session.get_modelmeta().custom_metadata_map)
        return session

    @functools.cached_property
    def frame_session(self):
        """model.frame.onnx's session, loaded at its first use (a second copy of the weights in memory)."""
        return self._session(self.frame_path)

    @classmethod
    def sharing_options(cls) -> dict[str, Any]:
        return {"spinning": False}

    def sharing_cores(self) -> OnnxRuntimeBackend:
        """On the CPU, a second session of the same file whose idle threads sleep instead of spinning.

        Spinning picks up each operator's work sooner (a lone pass is faster), but the spinning threads
        hold the cores that the process's other threads need for decoding and encoding."""
        if self.device != "cpu" or not self.spinning:
            return self
        return OnnxRuntimeBackend(self.package, "cpu", self.precision, threads=self.threads, spinning=False)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self._run_session(self.session, images)

    def run_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        if not self.runs_frames:
            return super().run_frames(frames)
        return self._run_session(self.frame_session, frames)

    def _run_session(self, session, images: np.ndarray) -> dict[str, np.ndarray]:
        import numpy as np

        images = np.ascontiguousarray(images)
        if self.device == "cpu":
            return dict(zip(self.output_names, session.run(self.output_names, {"image": images}), strict=True))
        index = cuda_index(self.device)
        binding = session.io_binding()
        binding.bind_ortvalue_input("image", self._ort_value.ortvalue_from_numpy(images, "cuda", index))
        for name in self.output_names:
            binding.bind_output(name, "cuda", index)
        session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))
