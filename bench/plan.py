"""What `onepass bench MODEL` measures: one table of formats (backend + precision) and the rule
that says whether each can run on this machine, with the reason when it cannot.

Imports nothing heavy at module level (the CLI parser imports this module's names).
"""

from __future__ import annotations

import difflib
import importlib.util
import shutil
from dataclasses import dataclass

from onepass.errors import UserError


class BenchError(UserError, ValueError):
    """A bench option or input is wrong or cannot be measured here; the message says which and why."""


@dataclass(frozen=True)
class Format:
    """One row of the formats table: how `onepass.load` runs it and which precisions it has."""

    backend: str  # onepass.load's backend
    compile: bool
    precisions: tuple[str, ...]
    devices: tuple[str, ...]  # "cpu", "cuda"
    file: str  # what the "size" column measures: the weights or the exported file for the precision


FORMATS: dict[str, Format] = {
    "torch": Format("torch", False, ("fp32", "bf16", "fp16"), ("cpu", "cuda"), "weights"),
    "torch-compile": Format("torch", True, ("fp32", "bf16", "fp16"), ("cpu", "cuda"), "weights"),
    "onnxruntime": Format("onnxruntime", False, ("fp32", "fp16", "int8"), ("cpu", "cuda"), "onnx"),
    # TensorRT engines are fp32 or fp16 (export/tensorrt.py: the CPU int8 export's uint8 activations
    # are not TensorRT's explicit quantisation)
    "tensorrt": Format("tensorrt", False, ("fp32", "fp16"), ("cuda",), "plan"),
}
PRECISIONS = ("fp32", "bf16", "fp16", "int8")

# precision -> (module, function) that writes the package's ONNX file for it (the export stage's API)
ONNX_EXPORTERS = {
    "fp32": ("onepass.export.onnx", "export_onnx"),
    "fp16": ("onepass.export.fp16", "export_fp16"),
    "int8": ("onepass.export.int8", "export_int8"),
}


@dataclass(frozen=True)
class Variant:
    format: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.format} {self.precision}"


@dataclass(frozen=True)
class Planned:
    variant: Variant
    skip: str | None = None  # the reason it cannot run here; None = it runs


@dataclass(frozen=True)
class BenchSettings:
    """Everything `onepass bench MODEL` was asked for (the CLI fills it; tests build it directly)."""

    model: str
    formats: tuple[str, ...] | None = None  # None: every format this device has
    precisions: tuple[str, ...] | None = None  # None: every precision each format has here
    batch_sizes: tuple[int, ...] = (1, 8)
    input_sizes: tuple[tuple[int, int], ...] | None = None  # None: the model's own input size
    device: str = "auto"
    # the camera frames that predict is timed from, end to end (pre-processing resizes from each, and
    # post-processing back to it)
    source_sizes: tuple[tuple[int, int], ...] = ((480, 640),)
    warmup: int = 3
    iters: int = 10  # at least this many timed runs ...
    seconds: float = 2.0  # ... and at least this long, per batch size and source size
    threads: int | None = None  # torch threads (onnxruntime uses one per usable core)
    metric_images: int = 96  # held-out scenes for the metric cost of each precision (0: skip)
    eval_data: str | None = None  # a labelled folder dataset for the metric cost (default: synthetic scenes)
    vs_single_task: bool = False
    single_task_models: tuple[str, ...] = ()  # given single-task packages (empty: build them)
    head_cost: tuple[str, ...] = ()  # tasks whose head's cost is measured: the model timed without each
    roofline_seconds: float = 1.0
    workdir: str | None = None


def parse_list(text: str, what: str, valid: tuple[str, ...]) -> tuple[str, ...]:
    """ "a,b" -> ("a", "b"), each checked against `valid` with a close-match suggestion."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise BenchError(f"{what}: empty list (valid: {', '.join(valid)})")
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BenchError(f"unknown {what} {name!r}{hint} valid: {', '.join(valid)}")
    return names


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BenchError(f"{what} {text!r} must be comma-separated integers, e.g. 1,8") from None
    if not values or min(values) < 1:
        raise BenchError(f"{what} {text!r}: give one or more integers >= 1")
    return values


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    sizes = []
    for item in text.split(","):
        try:
            height, width = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise BenchError(f"input size {item!r} must look like HxW, e.g. 128x160") from None
        if min(height, width) < 32 or height % 32 or width % 32:
            raise BenchError(f"input size {item!r}: H and W must be multiples of 32 (the encoder's stride)")
        sizes.append((height, width))
    return tuple(sizes)


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def plan_variants(settings: BenchSettings, device: str) -> list[Planned]:
    """Every (format, precision) asked for, each with the reason it cannot run here (or None).

    Formats and precisions the user named explicitly are measured when they can run at all; the
    defaults leave out what would only measure an emulation (bf16 on a CPU without bf16 units)."""
    kind = device_kind(device)
    formats = settings.formats or tuple(f for f, spec in FORMATS.items() if kind in spec.devices)
    planned = []
    for name in formats:
        spec = FORMATS[name]
        precisions = settings.precisions or spec.precisions
        for precision in precisions:
            if precision not in spec.precisions:
                continue  # e.g. int8 for torch: not a combination anyone asks for; not listed
            variant = Variant(name, precision)
            planned.append(Planned(variant, skip_reason(variant, kind, explicit=settings.precisions is not None)))
    if not planned:
        raise BenchError(
            "no format has the precisions asked for: "
            + "; ".join(f"{n}: {', '.join(FORMATS[n].precisions)}" for n in formats)
        )
    return planned


def skip_reason(variant: Variant, kind: str, explicit: bool) -> str | None:
    spec = FORMATS[variant.format]
    if kind not in spec.devices:
        return f"{variant.format} needs a CUDA GPU"
    if kind == "cpu" and not explicit:  # by default, no precision that this CPU's units cannot speed up
        from onepass.bench.machine import missing_cpu_units

        missing = missing_cpu_units(variant.precision)
        if missing:
            return f"{missing}; --precisions {variant.precision} measures it anyway"
    if spec.backend == "torch":
        if variant.precision == "fp16" and kind == "cpu":
            return "fp16 autocast needs CUDA (on CPU use bf16 or fp32)"
        if spec.compile and kind == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
            return "torch.compile on CPU needs a C++ compiler (none on PATH)"
    if spec.backend == "onnxruntime":
        module = ONNX_EXPORTERS[variant.precision][0]
        if importlib.util.find_spec(module) is None:
            return f"this onepass has no {variant.precision} ONNX export ({module} missing)"
        if kind == "cuda":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return "onnxruntime has no CUDA provider (install onnxruntime-gpu; see the README's GPU install)"
    if spec.backend == "tensorrt":
        if importlib.util.find_spec("tensorrt") is None:
            return "TensorRT is not installed (pip install 'onepass[gpu]')"
        if importlib.util.find_spec("onepass.runtime.tensorrt_backend") is None:
            return "this onepass has no TensorRT backend"
    return None
