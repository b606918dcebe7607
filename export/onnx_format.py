"""`onepass export MODEL --format onnx`: model.onnx, checked per head against PyTorch, and on request
model.fp16.onnx and model.int8.onnx with what each costs in task metrics.

Imports nothing heavy at module level (the `onepass` parser reads the options); `export` imports the
exporters (export/onnx.py, fp16.py, int8.py) when it runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from onepass.export.formats import ExportError, flag, flat_options, option, option_group, register_format
from onepass.export.int8_options import Int8Options

if TYPE_CHECKING:
    from onepass.models.package import ModelPackage


@dataclass(frozen=True)
class OnnxOptions:
    half: bool = option(False, "also model.fp16.onnx")
    int8: bool = option(False, "also model.int8.onnx (static int8, for CPUs; how: the --int8-* options)")
    calib: str | None = option(
        None, "--int8 calibration images: a folder (searched recursively), or 'synth'", metavar="DIR|synth"
    )
    quantisation: Int8Options | None = option_group(Int8Options, prefix="int8")  # None: the defaults
    eval_data: str | None = option(
        None,
        "labelled folder dataset to measure reduced precisions on (default: held-out synthetic scenes)",
        metavar="DIR",
    )
    out: str | None = option(None, "fp32 only: output file (default MODEL/model.onnx)", metavar="FILE")
    dynamic_size: bool = option(False, "dynamic H and W too")
    frame: bool = option(
        False, "also model.frame.onnx: camera frames of any size in, resized in the graph, maps at their size out"
    )

    def __post_init__(self) -> None:
        if self.int8 and self.calib is None:
            raise ExportError("--int8 needs --calib DIR: images like the ones the model will see ('synth' for the "
                              "fixed synthetic scenes, right only for models trained on them)")  # fmt: skip
        if self.calib is not None and not self.int8:
            raise ExportError("--calib is for --int8")
        if self.quantisation is not None and not self.int8:
            given = [flag(o.name) for o in flat_options(OnnxOptions) if o.group == "quantisation"]
            raise ExportError(f"{', '.join(given)} are for --int8")
        if self.out and (self.half or self.int8 or self.frame):
            raise ExportError(
                "--out names one file; --half, --int8 and --frame write model.fp16.onnx, model.int8.onnx and "
                "model.frame.onnx into the package"
            )


def export_precision(
    package: ModelPackage, precision: str, calib: str | None = None, quantisation: Int8Options | None = None
) -> Path:
    """The package's ONNX file for `precision` (fp32, fp16, int8), written into the package; int8 is
    calibrated on `calib` (None: the fixed synthetic scenes) and quantised as `quantisation` says
    (None: the defaults)."""
    if precision == "fp32":
        from onepass.export.onnx import export_onnx

        return export_onnx(package)
    if precision == "fp16":
        from onepass.export.fp16 import export_fp16

        return export_fp16(package)
    if precision == "int8":
        from onepass.export.int8 import export_int8

        return export_int8(package, calib, options=quantisation)
    raise ExportError(f"ONNX exports: precision {precision!r} is not offered (valid: fp32, fp16, int8)")


@register_format(
    "onnx", writes="`model.onnx` (+ `model.fp16.onnx`, `model.int8.onnx`, `model.frame.onnx`)", options=OnnxOptions
)
def export(package: ModelPackage, options: OnnxOptions, report: dict) -> None:
    from onepass.export.onnx import export_onnx
    from onepass.export.parity import onnx_parity, onnx_runner
    from onepass.export.report import measuring_examples, parity_json, print_parity, record_metrics
    from onepass.models.package_exports import QUANTISATION_KEY

    examples = measuring_examples(package, options.eval_data, report) if options.half or options.int8 else None
    path = export_onnx(package, options.out, dynamic_size=options.dynamic_size)
    checks = onnx_parity(package, path)
    print_parity(path.name, checks)
    if not all(check.passed for check in checks):
        path.unlink()
        raise ExportError(f"{path}: parity check failed; the export was removed")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if options.out:
        return
    report["files"][path.name] = {"parity": parity_json(checks)}
    if options.frame:
        export_frame(package, report)
    reduced: dict[str, Path] = {}
    if options.half:
        reduced["fp16"] = export_precision(package, "fp16")
    if options.int8:
        quantisation = options.quantisation or Int8Options()
        reduced["int8"] = export_precision(
            package, "int8", None if options.calib == "synth" else options.calib, quantisation
        )
        entry = report["files"].setdefault(reduced["int8"].name, {})
        entry["calibration"] = options.calib
        entry[QUANTISATION_KEY] = dataclasses.asdict(quantisation)
    if reduced:
        files = {path.name: path, **{p.name: p for p in reduced.values()}}
        record_metrics(package, {name: onnx_runner(p) for name, p in files.items()}, report, examples)
        for reduced_path in reduced.values():
            print(f"wrote {reduced_path} ({reduced_path.stat().st_size / 1e6:.1f} MB)")


def export_frame(package: ModelPackage, report: dict) -> Path:
    """model.frame.onnx, checked per head against PyTorch's FrameGraph on frames of another size than the
    model's (removed if it fails), its parity recorded in `report`."""
    from onepass.export.onnx import export_frame_onnx
    from onepass.export.parity import frame_parity, onnx_runner
    from onepass.export.report import parity_json, print_parity

    path = export_frame_onnx(package)
    checks = frame_parity(package, onnx_runner(path), path)
    print_parity(path.name, checks)
    if not all(check.passed for check in checks):
        path.unlink()
        raise ExportError(f"{path}: parity check failed; the export was removed")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    report["files"][path.name] = {"parity": parity_json(checks)}
    return path
