"""`onepass export MODEL --format tensorrt`: a TensorRT engine for this GPU, its fp32 parity checked
per head against PyTorch (an fp16 engine reports its metric cost instead).

Imports nothing heavy at module level (the `onepass` parser reads the options); `export` imports
TensorRT when it runs, and without it (or a GPU) fails saying what to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from onepass.export.formats import ExportError, option, register_format

if TYPE_CHECKING:
    from onepass.models.package import ModelPackage

PRECISIONS = ("fp32", "fp16")  # engines; the CPU int8 export's uint8 activations are not TensorRT's quantisation
DEFAULT_MAX_BATCH = 32  # the engine's optimisation profile covers batches 1..max_batch
DEFAULT_WORKSPACE_GB = 4.0
TENSORRT_MISSING = (
    'TensorRT is not installed: on a machine with an NVIDIA GPU, `pip install ".[gpu]"` '
    "(TensorRT 10.x or 11.x; see the README's GPU install)"
)


@dataclass(frozen=True)
class TensorRTOptions:
    half: bool = option(False, "an fp16 engine (built from model.fp16.onnx, exported first if missing)")
    eval_data: str | None = option(
        None,
        "labelled folder dataset to measure reduced precisions on (default: held-out synthetic scenes)",
        metavar="DIR",
    )
    max_batch: int = option(DEFAULT_MAX_BATCH, "largest batch", metavar="N")
    workspace: float = option(DEFAULT_WORKSPACE_GB, "builder workspace in GB", metavar="GB")
    device: int = option(0, "CUDA device index", metavar="N")


@register_format(
    "tensorrt",
    writes="`model.<gpu>.trt<version>.<precision>.plan` + `<plan>.json`",
    options=TensorRTOptions,
)
def export(package: ModelPackage, options: TensorRTOptions, report: dict) -> None:
    from onepass.export.onnx_format import export_precision
    from onepass.export.parity import parity
    from onepass.export.report import measuring_examples, parity_json, print_parity, record_metrics
    from onepass.export.tensorrt import EngineRunner, build_engine
    from onepass.models.package_exports import ONNX_FILES, EngineInfo, sidecar_path

    precision = "fp16" if options.half else "fp32"
    examples = measuring_examples(package, options.eval_data, report) if options.half else None
    if options.half and not (package.path / ONNX_FILES["fp16"]).is_file():
        export_precision(package, "fp16")
    plan = build_engine(package, precision, options.max_batch, options.workspace, options.device)
    run = EngineRunner(plan, EngineInfo.read(sidecar_path(plan)), device=f"cuda:{options.device}")
    if precision == "fp32":
        checks = parity(package, run)
        print_parity(plan.name, checks)
        if not all(check.passed for check in checks):
            plan.unlink()
            sidecar_path(plan).unlink()
            raise ExportError(f"{plan}: parity check failed; the engine was removed")
        report["files"][plan.name] = {"parity": parity_json(checks)}
    else:
        record_metrics(package, {plan.name: run}, report, examples)
    print(f"wrote {plan} ({plan.stat().st_size / 1e6:.1f} MB) and {sidecar_path(plan).name}")
