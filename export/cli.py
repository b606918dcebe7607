"""`onepass export MODEL --format onnx|tensorrt [options]`: every export checked against PyTorch.

    onepass export MODEL                              model.onnx, parity per head
    onepass export MODEL --half --int8 --calib DIR    + model.fp16.onnx, model.int8.onnx, metric costs
    onepass export MODEL --format tensorrt [--half]   model.<gpu>.trt<version>.<precision>.plan

fp32 exports must pass each head's parity thresholds or are removed; reduced precisions report
what they cost in task metrics on held-out synthetic scenes, next to PyTorch fp32. Every report
also goes to MODEL/exports.json.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExportFormat:
    name: str
    writes: str
    options: tuple[str, ...]  # the flags this format accepts


# Ultralytics-style: one table of formats and the options each accepts, checked before any work.
EXPORT_FORMATS = {
    f.name: f
    for f in (
        ExportFormat("onnx", "model.onnx (+ model.fp16.onnx, model.int8.onnx)", ("half", "int8", "calib", "eval_data", "out", "dynamic_size")),
        ExportFormat("tensorrt", "model.<gpu>.trt<version>.<precision>.plan + .json", ("half", "eval_data", "max_batch", "workspace", "device")),
    )
}  # fmt: skip
OPTION_FLAGS = {"half": "--half", "int8": "--int8", "calib": "--calib", "eval_data": "--eval-data", "out": "--out", "dynamic_size": "--dynamic-size",
                "max_batch": "--max-batch", "workspace": "--workspace", "device": "--device"}  # fmt: skip
REPORT_FILE = "exports.json"
REPORT_FORMAT = "onepass-exports"
REPORT_VERSION = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    formats = "; ".join(f"{f.name}: {f.writes}" for f in EXPORT_FORMATS.values())
    export = commands.add_parser(
        "export", help="export a model package (ONNX fp32/fp16/int8, TensorRT), checked against PyTorch",
        description=f"Formats — {formats}.",
    )  # fmt: skip
    export.add_argument("model", help="model package directory (or 'default')")
    export.add_argument("--format", default="onnx", help=f"one of: {', '.join(EXPORT_FORMATS)} (default onnx)")
    export.add_argument("--half", action="store_true", help="onnx: also model.fp16.onnx; tensorrt: an fp16 engine")
    export.add_argument("--int8", action="store_true", help="onnx: also model.int8.onnx (static QDQ, for CPUs)")
    export.add_argument("--calib", help="--int8 calibration images: a folder (searched recursively), or 'synth'")
    export.add_argument(
        "--eval-data", dest="eval_data",
        help="labelled folder dataset to measure fp16/int8 on (default: held-out synthetic scenes)",
    )  # fmt: skip
    export.add_argument("--out", help="onnx fp32 only: output file (default MODEL/model.onnx)")
    export.add_argument("--dynamic-size", dest="dynamic_size", action="store_true", help="onnx: dynamic H and W too")
    export.add_argument("--max-batch", dest="max_batch", type=int, help="tensorrt: largest batch (default 32)")
    export.add_argument("--workspace", type=float, help="tensorrt: builder workspace in GB (default 4)")
    export.add_argument("--device", type=int, help="tensorrt: CUDA device index (default 0)")
    export.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from onepass.errors import unknown_name_error
    from onepass.export.onnx import ExportError
    from onepass.models.package import open_package

    if args.format not in EXPORT_FORMATS:
        raise unknown_name_error("export format", args.format, list(EXPORT_FORMATS))
    chosen = EXPORT_FORMATS[args.format]
    for option, flag in OPTION_FLAGS.items():
        if getattr(args, option) not in (None, False) and option not in chosen.options:
            raise ExportError(f"{flag} does not apply to --format {chosen.name} (its options: "
                              f"{', '.join(OPTION_FLAGS[o] for o in chosen.options)})")  # fmt: skip
    if args.int8 and args.calib is None:
        raise ExportError("--int8 needs --calib DIR: images like the ones the model will see ('synth' for the "
                          "fixed synthetic scenes, right only for models trained on them)")  # fmt: skip
    if args.calib is not None and not args.int8:
        raise ExportError("--calib is for --int8")
    if args.out and (args.half or args.int8):
        raise ExportError(
            "--out names one file; --half and --int8 write model.fp16.onnx and model.int8.onnx into the package"
        )
    package = open_package(args.model)
    report = _read_report(package.path)
    examples = None
    if args.half or args.int8:  # read (and validate) the measuring images before any slow work
        from onepass.export.quality import folder_examples, held_out_scenes

        examples = folder_examples(package, args.eval_data) if args.eval_data else held_out_scenes(package)
        report["reference"] = {"images": args.eval_data or "held-out synthetic scenes", "count": len(examples[0])}
    if chosen.name == "onnx":
        _export_onnx(package, args, report, examples)
    else:
        _export_tensorrt(package, args, report, examples)
    _write_report(package.path, report)
    return 0


def _export_onnx(package: Any, args: argparse.Namespace, report: dict, examples: Any) -> None:
    from onepass.export.onnx import ExportError, export_onnx
    from onepass.export.parity import onnx_parity

    path = export_onnx(package, args.out, dynamic_size=args.dynamic_size)
    checks = onnx_parity(package, path)
    _print_parity(path.name, checks)
    if not all(check.passed for check in checks):
        path.unlink()
        raise ExportError(f"{path}: parity check failed; the export was removed")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.out:
        return
    report["files"][path.name] = {"parity": [_check_json(c) for c in checks]}
    reduced: dict[str, Path] = {}
    if args.half:
        from onepass.export.fp16 import export_fp16

        reduced["fp16"] = export_fp16(package)
    if args.int8:
        from onepass.export.int8 import export_int8

        calib = None if args.calib == "synth" else args.calib
        reduced["int8"] = export_int8(package, calib)
        report["files"].setdefault(reduced["int8"].name, {})["calibration"] = args.calib
    if reduced:
        from onepass.export.parity import onnx_runner

        files = {"model.onnx": path, **{p.name: p for p in reduced.values()}}
        _report_metrics(package, {name: onnx_runner(p) for name, p in files.items()}, report, examples)
        for reduced_path in reduced.values():
            print(f"wrote {reduced_path} ({reduced_path.stat().st_size / 1e6:.1f} MB)")


def _export_tensorrt(package: Any, args: argparse.Namespace, report: dict, examples: Any) -> None:
    from onepass.export.onnx import ONNX_FILES, ExportError
    from onepass.export.parity import parity
    from onepass.export.tensorrt import DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE_GB, build_engine
    from onepass.runtime.tensorrt_backend import TensorRTBackend

    precision = "fp16" if args.half else "fp32"
    if args.half and not (package.path / ONNX_FILES["fp16"]).is_file():
        from onepass.export.fp16 import export_fp16

        export_fp16(package)
    plan = build_engine(
        package,
        precision,
        args.max_batch or DEFAULT_MAX_BATCH,
        args.workspace or DEFAULT_WORKSPACE_GB,
        args.device or 0,
    )
    backend = TensorRTBackend(package, device=f"cuda:{args.device or 0}", precision=precision)
    if precision == "fp32":
        checks = parity(package, backend.run)
        _print_parity(plan.name, checks)
        if not all(check.passed for check in checks):
            plan.unlink()
            plan.with_name(plan.name + ".json").unlink()
            raise ExportError(f"{plan}: parity check failed; the engine was removed")
        report["files"][plan.name] = {"parity": [_check_json(c) for c in checks]}
    else:
        _report_metrics(package, {plan.name: backend.run}, report, examples)
    print(f"wrote {plan} ({plan.stat().st_size / 1e6:.1f} MB) and {plan.name}.json")


def _report_metrics(package: Any, runners: Mapping[str, Any], report: dict, examples: Any) -> None:
    """Task metrics of each export on held-out images, next to PyTorch fp32: the cost of a precision."""
    from rich.console import Console
    from rich.table import Table

    from onepass.export.parity import torch_runner
    from onepass.export.quality import graph_metrics

    reference = graph_metrics(package, torch_runner(package), examples)
    results = {name: graph_metrics(package, run, examples) for name, run in runners.items()}
    images = report["reference"]["images"]
    table = Table(title=f"task metrics on {len(examples[0])} images of {images} (Δ against PyTorch fp32)")
    for column in ("task", "metric", "pytorch fp32", *results):
        table.add_column(column, justify="right")
    for task in package.config.tasks:
        for metric, higher_is_better in task.metric_directions().items():
            base = reference[task.name][metric]
            cells = []
            for values in results.values():
                delta = values[task.name][metric] - base
                worse = delta < 0 if higher_is_better else delta > 0
                shown = f"[red]{delta:+.3g}[/red]" if worse and abs(delta) > 1e-9 else f"{delta:+.3g}"
                cells.append(f"{values[task.name][metric]:.4g} ({shown})")
            table.add_row(task.name, metric + (" ↑" if higher_is_better else " ↓"), f"{base:.4g}", *cells)
    Console(width=160).print(table)
    report["reference"]["pytorch fp32"] = reference
    for name, values in results.items():
        report["files"].setdefault(name, {})["metrics"] = values


def _print_parity(name: str, checks: list) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"parity of {name} against PyTorch (8 fixed synthetic scenes)")
    for column in ("output", "measure", "value", "limit", "status"):
        table.add_column(column)
    for check in checks:
        limit = f"{'≥' if check.higher_is_better else '≤'} {check.limit:g}"
        table.add_row(check.output, check.measure, f"{check.value:.4g}", limit, "ok" if check.passed else "FAILED")
    Console(width=120).print(table)


def _check_json(check: Any) -> dict:
    return {"output": check.output, "measure": check.measure, "value": check.value, "limit": check.limit,
            "passed": check.passed}  # fmt: skip


def _read_report(path: Path) -> dict:
    """MODEL/exports.json: what each export file is and how it measured; rewritten on every export."""
    import json

    from onepass.models.package import PackageError

    file = path / REPORT_FILE
    if not file.is_file():
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "files": {}}
    try:
        report = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise PackageError(f"{file}: not valid JSON ({error}); delete it and export again") from None
    if report.get("format") != REPORT_FORMAT or report.get("version") != REPORT_VERSION:
        raise PackageError(f"{file}: not an onepass exports report of version {REPORT_VERSION}")
    return report


def _write_report(path: Path, report: dict) -> None:
    from onepass.models.package import write_json_atomic

    existing = {p.name for p in path.iterdir()}
    report["files"] = {name: entry for name, entry in report["files"].items() if name in existing}
    write_json_atomic(path / REPORT_FILE, report)
