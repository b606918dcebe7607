"""What each int8 quantisation knob does to a model package: task metrics against PyTorch fp32, file
size, and int8/fp32 latency at batch 1 and 8, one setting per row.

    python benchmarks/int8_knobs.py /tmp/default-copy --json docs/performance/int8-knobs.json
    python benchmarks/int8_knobs.py MODEL --calib DIR --eval-data DIR --eval-images 48 --seconds 0.5

The rows: the int8 export as it was before the --int8-* options ("before": full-range int8 weights,
Relu and Clip run on dequantised values), each knob changed alone from it, then the defaults before the
VNNI measurements ("int7 folded": 7-bit weights, Relu and Clip folded) and changes from them, then the
current defaults (`onepass export MODEL --int8`: int7 folded with each head's last convolution and the
small ones fp32) with a change or two, and at onnxruntime's lower graph optimisation levels.
Every row is measured on the same held-out images (export/quality.py, as `onepass export` measures a
precision), twice: with this CPU's onnxruntime kernels, and with the QDQ graph run unfused
(ORT_DISABLE_ALL: every Quantize/Dequantize pair computed in fp32 around fp32 operators), the error
of the quantisation itself without any kernel's integer arithmetic, close to what a CPU with VNNI,
whose kernels accumulate exactly, gives. A QOperator graph has no unfused form (its QLinearConv is
integer arithmetic on every CPU): its second figures are the kernels' again.

Latency: fp32 (model.onnx) and each int8 file alternate, `--rounds` times, each timed with
bench/timing.py's loop; the ratio is the median of the rounds' int8 p50 / fp32 p50. The CPU features
are printed and recorded: without VNNI (AVX2 only) onnxruntime's integer kernels are not the fast ones,
so the ratios say nothing about a VNNI CPU; measure them there, on a quiet machine.

The package is only read (model.onnx is exported first if missing); the int8 files go to --workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from onepass.bench.machine import cpu_model, usable_cores
from onepass.bench.timing import time_calls
from onepass.export.int8 import export_int8
from onepass.export.int8_options import Int8Options
from onepass.export.onnx import fp32_onnx
from onepass.export.parity import torch_runner
from onepass.export.quality import Examples, Metrics, folder_examples, graph_metrics, held_out_scenes
from onepass.models.package import ModelPackage, open_package
from onepass.runtime.cpu import cpu_flags, features_text

# the export before the --int8-* options existed: the reference the knobs are changed from
BEFORE = Int8Options(weights="int8", keep_fp32="activations", fp32_below=0)
ONE_CHANGE = {  # name -> the change, one knob each, from BEFORE
    "--int8-format qoperator": {"format": "qoperator"},
    "--int8-calibration entropy": {"calibration": "entropy"},
    "--int8-calibration percentile": {"calibration": "percentile"},
    "--int8-symmetric-activations": {"symmetric_activations": True},
    "--int8-weights int7": {"weights": "int7"},
    "--int8-weights uint8": {"weights": "uint8"},
    "Relu/Clip folded (keep-fp32 none)": {"keep_fp32": "none"},
    "--int8-keep-fp32 activations,first": {"keep_fp32": "activations,first"},
    "--int8-keep-fp32 activations,last": {"keep_fp32": "activations,last"},
    "--int8-fp32-below 2048": {"fp32_below": 2048},
}
# the defaults until the VNNI measurements (7-bit weights, Relu/Clip folded, every convolution int8), and
# further settings from them; the two fastest on a VNNI CPU together are the defaults now
INT7_FOLDED = Int8Options(keep_fp32="none", fp32_below=0)
COMBINED = {
    "int7 folded + --int8-calibration percentile": {"calibration": "percentile"},
    "int7 folded + --int8-keep-fp32 last": {"keep_fp32": "last"},
    "int7 folded + --int8-keep-fp32 first": {"keep_fp32": "first"},
    "int7 folded + --int8-weights int8 --int8-keep-fp32 first": {"weights": "int8", "keep_fp32": "first"},
    "int7 folded + --int8-format qoperator": {"format": "qoperator"},
    "int7 folded + --int8-fp32-below 2048": {"fp32_below": 2048},
}
FROM_DEFAULTS = {
    "defaults + --int8-weights int8": {"weights": "int8"},
    "defaults + --int8-format qoperator": {"format": "qoperator"},
}
LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC"}
# the figures in the table, where the model has the task: (task, metric, how a change is shown)
HEADLINE = (
    ("semseg", "miou", "points"),
    ("depth", "rmse", "percent"),
    ("normals", "mean_angle", "difference"),
    ("people", "ap", "points"),
)
TARGET = {"miou points": -1.0, "rmse percent": 2.0}  # the accuracy goal for int8


@dataclass(frozen=True)
class Setting:
    name: str
    options: Int8Options
    level: str = "all"  # onnxruntime's graph optimisation level for the int8 session


def settings() -> list[Setting]:
    rows = [Setting("before", BEFORE)]
    rows += [Setting(name, dataclasses.replace(BEFORE, **change)) for name, change in ONE_CHANGE.items()]
    rows.append(Setting("int7 folded (the defaults before)", INT7_FOLDED))
    rows += [Setting(name, dataclasses.replace(INT7_FOLDED, **change)) for name, change in COMBINED.items()]
    rows.append(Setting("defaults", Int8Options()))
    rows += [Setting(name, dataclasses.replace(Int8Options(), **change)) for name, change in FROM_DEFAULTS.items()]
    rows += [Setting(f"defaults, ORT level {level}", Int8Options(), level) for level in ("extended", "basic")]
    return rows


def session(path: Path, level: str):
    """An onnxruntime CPU session as the onnxruntime backend makes one, at graph optimisation `level`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, LEVELS.get(level, level))
    options.intra_op_num_threads = usable_cores()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner(path: Path, level: str):
    run = session(path, level)
    names = [o.name for o in run.get_outputs()]
    return lambda images: dict(zip(names, run.run(None, {"image": images}), strict=True))


def changes(package: ModelPackage, metrics: Metrics, reference: Metrics) -> dict[str, float]:
    """The headline figures' change against the reference, plus the people attributes' worst drop."""
    found = {}
    for task, metric, shown in HEADLINE:
        if task not in reference:
            continue
        base, value = reference[task][metric], metrics[task][metric]
        if shown == "points":
            found[f"{metric} points"] = (value - base) * 100
        elif shown == "percent":
            found[f"{metric} percent"] = (value - base) / base * 100
        else:
            found[metric] = value - base
    attributes = [m for m in reference.get("people", {}) if m.startswith("acc_")]
    if attributes:
        found["attributes worst points"] = min(metrics["people"][m] - reference["people"][m] for m in attributes)
    return found


def latency_ratios(fp32: Path, int8: Path, level: str, images: np.ndarray, rounds: int, seconds: float) -> dict:
    """int8 p50 / fp32 p50 at batch 1 and 8, fp32 and int8 alternating; the median over the rounds."""
    runs = {"fp32": session(fp32, "all"), "int8": session(int8, level)}
    found = {}
    for batch in (1, 8):
        feed = {"image": np.ascontiguousarray(images[np.arange(batch) % len(images)])}
        p50s: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(rounds):
            for name, run in runs.items():

                def call(run=run, feed=feed) -> None:
                    run.run(None, feed)

                p50s[name].append(time_calls(call, warmup=2, runs=5, seconds=seconds).latency.p50)
        ratios = [i / f for i, f in zip(p50s["int8"], p50s["fp32"], strict=True)]
        found[f"batch {batch}"] = {
            "ratio": statistics.median(ratios),
            "fp32 p50 ms": p50s["fp32"],
            "int8 p50 ms": p50s["int8"],
        }
    return found


def meets_target(found: dict[str, float]) -> bool:
    return (
        found.get("miou points", 0.0) >= TARGET["miou points"]
        and found.get("rmse percent", 0.0) <= TARGET["rmse percent"]
    )


def measure(args: argparse.Namespace) -> dict:
    package = open_package(args.model)
    fp32 = fp32_onnx(package)
    examples: Examples = (
        folder_examples(package, args.eval_data, args.eval_images)
        if args.eval_data
        else held_out_scenes(package, args.eval_images)
    )
    reference = graph_metrics(package, torch_runner(package), examples)
    calib = None if args.calib == "synth" else args.calib
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="onepass-int8-knobs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    files: dict[Int8Options, Path] = {}
    rows = []
    chosen = [s for s in settings() if not args.only or s.name in args.only]
    for number, setting in enumerate(chosen):
        if setting.options not in files:
            files[setting.options] = export_int8(package, calib, workdir / f"int8-{number}.onnx", setting.options)
        path = files[setting.options]
        own = graph_metrics(package, runner(path, setting.level), examples)
        unfused = graph_metrics(package, runner(path, "ORT_DISABLE_ALL"), examples)
        row = {
            "setting": setting.name,
            "options": dataclasses.asdict(setting.options),
            "ort level": setting.level,
            "size MB": path.stat().st_size / 1e6,
            "change": changes(package, own, reference),
            "change unfused": changes(package, unfused, reference),
            "metrics": own,
            "metrics unfused": unfused,
            "latency": latency_ratios(fp32, path, setting.level, examples[0], args.rounds, args.seconds),
        }
        row["meets accuracy target"] = meets_target(row["change"])
        rows.append(row)
        print(f"{setting.name}: {json.dumps(row['change'])}", flush=True)
    flags = cpu_flags()
    return {
        "model": str(package.path),
        "cpu": cpu_model(),
        "cpu features": features_text(flags),
        "threads": usable_cores(),
        "load average": os.getloadavg(),
        "images": args.eval_data or "held-out synthetic scenes",
        "image count": len(examples[0]),
        "calibration": args.calib,
        "fp32 file MB": fp32.stat().st_size / 1e6,
        "pytorch fp32": reference,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    table = Table(
        title=f"int8 settings on {result['image count']} images of {result['images']}, against PyTorch fp32 "
        f"(CPU: {result['cpu']}; {result['cpu features']})"
    )
    columns = ["setting", "mIoU Δ pts", "RMSE Δ %", "normals Δ °", "AP Δ pts", "attrs worst Δ pts"]
    columns += ["unfused mIoU / RMSE Δ", "MB", "int8/fp32 b1", "b8", "target"]
    for column in columns:
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in result["rows"]:
        change, unfused = row["change"], row["change unfused"]

        def shown(values: dict, key: str) -> str:
            return f"{values[key]:+.2f}" if key in values else "—"

        table.add_row(
            row["setting"],
            shown(change, "miou points"),
            shown(change, "rmse percent"),
            shown(change, "mean_angle"),
            shown(change, "ap points"),
            shown(change, "attributes worst points"),
            f"{shown(unfused, 'miou points')} / {shown(unfused, 'rmse percent')}",
            f"{row['size MB']:.2f}",
            f"{row['latency']['batch 1']['ratio']:.2f}",
            f"{row['latency']['batch 8']['ratio']:.2f}",
            "yes" if row["meets accuracy target"] else "no",
        )
    Console(width=200).print(table)
    print(
        f"fp32 model.onnx {result['fp32 file MB']:.2f} MB; target: mIoU Δ ≥ {TARGET['miou points']} points and "
        f"depth RMSE Δ ≤ {TARGET['rmse percent']} %; load average {', '.join(f'{v:.1f}' for v in result['load average'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model package directory (a copy: model.onnx is exported into it if missing)")
    parser.add_argument("--calib", default="synth", help="calibration images: a folder, or 'synth' (default)")
    parser.add_argument("--eval-data", help="labelled folder dataset (default: held-out synthetic scenes)")
    parser.add_argument("--eval-images", type=int, default=96, help="images measured on (default 96)")
    parser.add_argument("--rounds", type=int, default=3, help="fp32/int8 alternations per batch size (default 3)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per round and file (default 1)")
    parser.add_argument("--only", nargs="*", help="measure only the settings of these names")
    parser.add_argument("--workdir", help="where the int8 files go (default: a new temporary folder)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    result = measure(args)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
