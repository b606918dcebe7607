"""`onepass bench MODEL`: every planned variant measured in its own worker process, then the derived
figures (images/s, achieved FLOP/s against the matmul roofline, one-pass / single-task ratios)
computed from the measured values into one JSON document (format "onepass-bench", version 1)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from onepass.bench.machine import describe_machine, peak_for, roofline, source_revision, versions
from onepass.bench.plan import FORMATS, BenchError, BenchSettings, Planned, device_kind, plan_variants
from onepass.bench.prepare import count_model, mirror_package, prepare_file, single_task_packages, size_text
from onepass.bench.stats import ratio

BENCH_FORMAT = "onepass-bench"
BENCH_VERSION = 1
SOURCE_SEED = 20261125  # the camera frames every variant is timed on
MAX_SOURCES = 4  # distinct frames; larger batches repeat them (rendering 480x640 takes ~0.5 s each)
WORKER_TIMEOUT_S = 1800
GOAL = {"format": "onnxruntime", "device": "cpu", "latency_ratio": 0.30}  # the target, one-pass / N models

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def work_directory(path: str | None) -> Iterator[Path]:
    if path:
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        yield root
    else:
        with tempfile.TemporaryDirectory(prefix="onepass-bench-") as temporary:
            yield Path(temporary)


def render_sources(path: Path, size: tuple[int, int], count: int) -> Path:
    from onepass.data.synth import render_scene

    images = np.stack([render_scene(np.random.default_rng([SOURCE_SEED, i]), *size).image for i in range(count)])
    np.savez(path, images=images)
    return path


def run_worker(spec: dict[str, Any], root: Path, name: str) -> dict[str, Any]:
    """One configuration in a fresh `python -m onepass.bench.worker` process."""
    spec_path, out_path = root / f"{name}.spec.json", root / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "onepass.bench.worker", str(spec_path), str(out_path)],
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"worker did not finish within {WORKER_TIMEOUT_S} s"}
    if done.returncode != 0 or not out_path.is_file():
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"status": "error", "error": f"worker exited with status {done.returncode}: {tail[0][:300]}"}
    return json.loads(out_path.read_text())


def derive_batches(batches: list[dict], flops_per_image: int | None, peak: tuple[str, float] | None) -> list[dict]:
    """Per batch size: ms per image, images/s (batch / mean model time), end-to-end ms per image, and
    achieved FLOP/s as a fraction of the matmul peak — all from the measured samples."""
    derived = []
    for b in batches:
        model = b["model_ms"]
        row = dict(b)
        row["ms_per_image"] = model["p50"] / b["batch"]
        row["images_per_s"] = b["batch"] / (model["mean"] / 1e3)
        row["end_to_end_ms_per_image"] = (
            b["preprocess_ms_per_image"]["p50"] + row["ms_per_image"] + b["postprocess_ms_per_image"]["p50"]
        )
        if flops_per_image:
            row["flops_per_s"] = flops_per_image * row["images_per_s"]
            if peak:
                row["roofline"] = {"peak": peak[0], "fraction": row["flops_per_s"] / peak[1]}
        derived.append(row)
    return derived


def memory_above_baseline(measured: dict[str, Any], batch: dict[str, Any]) -> int:
    """Peak RSS while this batch size ran, minus the worker's RSS before any model was loaded."""
    return batch["peak_rss_bytes"] - measured["rss_baseline_bytes"]


def compare_single_task(one: dict[str, Any], single: dict[str, Any]) -> dict[str, Any]:
    """One-pass / sum-of-single-task ratios, from the two measured entries (same run, same settings).

    latency: median model time of one batch, against the sum of the N models' medians on the same
    batch (each timed alone, all N loaded). end_to_end adds each predictor's own pre- and
    post-processing. memory: RSS above the process baseline, one model against all N loaded."""
    by_batch = {b["batch"]: b for b in single["batches"]}
    batches = []
    for b in one["batches"]:
        s = by_batch.get(b["batch"])
        if s is None:
            continue
        batches.append(
            {
                "batch": b["batch"],
                "one_pass_ms": b["model_ms"]["p50"],
                "single_task_sum_ms": s["model_ms"]["p50"],
                "single_task_ms": {task: m["p50"] for task, m in zip(single["tasks"], s["per_model_ms"], strict=True)},
                "latency_ratio": ratio(b["model_ms"]["p50"], s["model_ms"]["p50"]),
                "end_to_end_ratio": ratio(b["end_to_end_ms_per_image"], s["end_to_end_ms_per_image"]),
                "memory_ratio": ratio(memory_above_baseline(one, b), memory_above_baseline(single, s)),
            }
        )
    counts, sums = one["counts"], {k: sum(c[k] for c in single["counts"]) for k in one["counts"]}
    return {
        "batches": batches,
        "parameters_ratio": ratio(counts["parameters"], sums["parameters"]),
        "flops_ratio": ratio(counts["flops_per_image"], sums["flops_per_image"]),
        "file_bytes_ratio": ratio(one["file"]["bytes"], single["file"]["bytes"]),
    }


def goal_check(entry: dict[str, Any], device: str) -> dict[str, Any] | None:
    if entry["format"] != GOAL["format"] or device_kind(device) != GOAL["device"]:
        return None
    ratios = [b["latency_ratio"] for b in entry["vs_single_task"]["batches"] if b["latency_ratio"] is not None]
    if not ratios:
        return None
    return {
        "latency_ratio_max": max(ratios),
        "goal": GOAL["latency_ratio"],
        "met": max(ratios) <= GOAL["latency_ratio"],
    }


def _worker_spec(settings: BenchSettings, planned: Planned, packages: list, device: str, sources: Path) -> dict:
    spec = FORMATS[planned.variant.format]
    return {
        "packages": [str(p.path) for p in packages],
        "backend": spec.backend,
        "compile": spec.compile,
        "precision": planned.variant.precision,
        "device": device,
        "batch_sizes": list(settings.batch_sizes),
        "sources": str(sources),
        "warmup": settings.warmup,
        "iters": settings.iters,
        "seconds": settings.seconds,
        "threads": settings.threads,
    }


def _measured_entry(result: dict, counts: dict | list, file: dict, peak, flops_per_image) -> dict:
    entry = {k: v for k, v in result.items() if k not in ("batches", "traceback")}
    entry["batches"] = derive_batches(result["batches"], flops_per_image, peak)
    entry["counts"] = counts
    entry["file"] = file
    return entry


def run_bench(settings: BenchSettings, log: Log = _stderr) -> dict[str, Any]:
    import torch

    from onepass.models.package import open_package
    from onepass.runtime.predictor import resolve_device

    began = time.perf_counter()
    package = open_package(settings.model)
    device = resolve_device(settings.device)
    if device_kind(device) == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: no CUDA GPU is visible to torch here")
    planned = plan_variants(settings, device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    sizes = settings.input_sizes or (tuple(package.config.input_size),)
    document: dict[str, Any] = {
        "format": BENCH_FORMAT,
        "version": BENCH_VERSION,
        "kind": "model",
        "command": settings.command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device,
        "machine": describe_machine(device),
        "versions": versions(),
        "source": source_revision(),
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("command", "extra")},
        "model": {
            "name": package.name,
            "path": str(package.path),
            "encoder": package.config.encoder,
            "architecture": package.config.architecture,
            "input_size": list(package.config.input_size),
            "tasks": [t.name for t in package.config.tasks],
        },
        "metric_directions": {t.name: t.metric_directions() for t in package.config.tasks},
    }
    log(f"bench: {package.name} on {device}; measuring the matmul roofline")
    document["roofline"] = roofline(device, settings.roofline_seconds)
    document["sizes"], document["variants"] = [], []
    with work_directory(settings.workdir) as root:
        sources = render_sources(
            root / "sources.npz", settings.source_size, min(max(settings.batch_sizes), MAX_SOURCES)
        )
        for size in sizes:
            sized = mirror_package(package, size, root)
            own_size = tuple(size) == tuple(package.config.input_size)
            counts = count_model(sized)
            size_entry: dict[str, Any] = {"input_size": list(size), "counts": counts}
            metric_images = settings.metric_images if own_size else 0  # metrics at the size the model was trained
            if metric_images:
                try:
                    size_entry["reference_metrics"] = _reference_metrics(sized, settings, log)
                except Exception as error:  # e.g. a model whose classes are not the synthetic scenes'
                    size_entry["metrics_error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                    log(f"bench: no metric cost measured: {size_entry['metrics_error']}")
            singles = []
            if settings.vs_single_task:
                singles = single_task_packages(package, size, root, settings.single_task_models)
                size_entry["single_task"] = [
                    {"task": s.config.tasks[0].name, "path": str(s.path), **count_model(s)} for s in singles
                ]
            document["sizes"].append(size_entry)
            for item in planned:
                document["variants"].append(
                    _measure_variant(
                        settings, item, device, sized, singles, size_entry, sources, root, document["roofline"], log
                    )
                )
    document["elapsed_s"] = time.perf_counter() - began
    return document


def _reference_metrics(package, settings: BenchSettings, log: Log) -> dict | None:
    from onepass.bench.worker import metric_examples
    from onepass.export.parity import torch_runner
    from onepass.export.quality import graph_metrics

    where = settings.eval_data or "held-out synthetic scenes"
    log(f"bench: reference metrics of the PyTorch fp32 model on {settings.metric_images} images of {where}")
    examples = metric_examples(package, {"metric_images": settings.metric_images, "eval_data": settings.eval_data})
    return graph_metrics(package, torch_runner(package), examples)


def _measure_variant(
    settings, item: Planned, device, sized, singles, size_entry, sources, root, peaks, log: Log
) -> dict[str, Any]:
    variant = item.variant
    size = tuple(size_entry["input_size"])
    entry: dict[str, Any] = {
        "format": variant.format,
        "precision": variant.precision,
        "label": variant.label,
        "input_size": list(size),
        "status": "skipped" if item.skip else "ok",
    }
    if item.skip:
        entry["reason"] = item.skip
        log(f"bench: {variant.label} {size_text(size)}: skipped ({item.skip})")
        return entry
    name = f"{variant.format}-{variant.precision}-{size_text(size)}"
    try:
        file = prepare_file(sized, variant, device, max(settings.batch_sizes))
    except Exception as error:  # an export that fails is this row's result, not the end of the bench
        entry.update(status="error", reason=f"export failed: {type(error).__name__}: {error}".splitlines()[0][:300])
        log(f"bench: {variant.label} {size_text(size)}: {entry['reason']}")
        return entry
    if file.export_s is not None:
        log(f"bench: exported {file.path.name} for {size_text(size)} in {file.export_s:.1f} s")
    spec = _worker_spec(settings, item, [sized], device, sources)
    measure_metrics = size_entry.get("reference_metrics") is not None
    spec["quality"] = {
        "metric_images": settings.metric_images if measure_metrics else 0,
        "eval_data": settings.eval_data,
    }
    log(f"bench: {variant.label} {size_text(size)}: measuring batch sizes {list(settings.batch_sizes)}")
    result = run_worker(spec, root, name)
    if result["status"] != "ok":
        entry.update(status="error", reason=result["error"])
        log(f"bench: {variant.label} {size_text(size)}: {entry['reason']}")
        return entry
    peak = peak_for(variant.precision, peaks)
    file_info = {"name": file.path.name, "bytes": file.bytes, "export_s": file.export_s}
    flops = size_entry["counts"]["flops_per_image"]
    entry.update(_measured_entry(result, size_entry["counts"], file_info, peak, flops))
    if singles:
        entry["single_task"] = _measure_single_task(
            settings, item, device, singles, size_entry, sources, root, peak, log, name
        )
        if entry["single_task"]["status"] == "ok":
            entry["vs_single_task"] = compare_single_task(entry, entry["single_task"])
            entry["vs_single_task"]["goal"] = goal_check(entry, device)
    return entry


def _measure_single_task(settings, item, device, singles, size_entry, sources, root, peak, log: Log, name: str):
    try:
        files = [prepare_file(s, item.variant, device, max(settings.batch_sizes)) for s in singles]
    except Exception as error:
        return {"status": "error", "reason": f"export failed: {type(error).__name__}: {error}".splitlines()[0][:300]}
    log(f"bench: {item.variant.label}: the {len(singles)} single-task models, side by side")
    result = run_worker(_worker_spec(settings, item, singles, device, sources), root, f"{name}-single")
    if result["status"] != "ok":
        return {"status": "error", "reason": result["error"]}
    counts = size_entry["single_task"]
    file_info = {"names": [f.path.name for f in files], "bytes": sum(f.bytes for f in files)}
    flops = sum(c["flops_per_image"] for c in counts)
    entry = _measured_entry(result, counts, file_info, peak, flops)
    entry["tasks"] = [c["task"] for c in counts]
    return entry
