"""One measured configuration, in a process of its own: `python -m onepass.bench.worker SPEC OUT`.

A fresh process per (format, precision, input size) makes peak memory mean something (nothing left
over from an earlier backend's arenas or allocator caches) and keeps thread pools independent.
Several packages in one spec (the single-task set) are loaded side by side, as a deployment of N
models would hold them (that is the memory figure), and each is timed alone in turn on the same
images; the set's statistics are the sums of the models' own.

Each iteration is one `Predictor.predict`, split in its three phases and timed separately:
preprocess (resize + stack), model (`backend.run`) and post-process (each task's `to_result`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from onepass.bench.stats import summarize

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def rss() -> tuple[int, int | None]:
    """(current RSS, peak RSS since the last reset) in bytes; Linux /proc, else getrusage's peak."""
    try:
        fields = dict(line.split(":", 1) for line in STATUS.read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


def reset_peak_rss() -> bool:
    """Linux resets the peak-RSS mark when "5" is written to clear_refs; False where it cannot."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class GpuMemory:
    """Peak memory on a CUDA device: torch's allocator peak (torch backends) and, through NVML, this
    process's memory on the device (every backend, the CUDA context included)."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.index = torch.device(device).index or 0
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except Exception:  # NVML missing or not permitted: torch's figure still stands
            self.nvml = None

    def reset(self) -> None:
        self.torch.cuda.reset_peak_memory_stats(self.index)

    def read(self) -> dict[str, int | None]:
        process = None
        if self.nvml is not None:
            try:
                for proc in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
                    if proc.pid == os.getpid():
                        process = int(proc.usedGpuMemory or 0)
            except Exception:
                process = None
        return {"torch_peak_bytes": int(self.torch.cuda.max_memory_allocated(self.index)), "process_bytes": process}


def sum_stats(stats: list[dict[str, float]]) -> dict[str, float]:
    """One model: its statistics. Several models run one after another: each statistic summed (the
    median of N models back to back, taken as the sum of their medians), `n` the fewest samples."""
    if len(stats) == 1:
        return stats[0]
    summed = {key: sum(s[key] for s in stats) for key in ("mean", "min", "p50", "p90", "p99")}
    return {"n": min(s["n"] for s in stats), **summed, "sum_of": len(stats)}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    import onepass

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    sources = list(np.load(spec["sources"])["images"])
    device = spec["device"]
    gpu = GpuMemory(device) if device.startswith("cuda") else None
    baseline_rss, _ = rss()
    peak_resettable = reset_peak_rss()

    predictors, load_s = [], []
    for path in spec["packages"]:
        start = time.perf_counter()
        predictors.append(
            onepass.load(
                path, backend=spec["backend"], device=device, precision=spec["precision"], compile=spec["compile"]
            )
        )
        load_s.append(time.perf_counter() - start)
    after_load_rss, load_peak_rss = rss()

    def iteration(predictor, images: list[np.ndarray]) -> tuple[float, float, float]:
        """One `predict`, timed in its three phases: (preprocess, model, post-process) seconds."""
        t0 = time.perf_counter()
        batch, sizes = predictor.preprocess(images)
        t1 = time.perf_counter()
        outputs = predictor.backend.run(batch)
        t2 = time.perf_counter()
        for i, size in enumerate(sizes):
            image_outputs = {k: v[i] for k, v in outputs.items()}
            for task in predictor.tasks.values():
                task.to_result(image_outputs, size)
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    def timed(predictor, images: list[np.ndarray]) -> dict[str, dict[str, float]]:
        nonlocal first_run_s
        for w in range(max(1, spec["warmup"])):
            start = time.perf_counter()
            iteration(predictor, images)
            if first_run_s is None and w == 0:
                first_run_s = time.perf_counter() - start  # includes compilation / engine building
        pre, model, post = [], [], []
        began = time.perf_counter()
        while len(model) < spec["iters"] or time.perf_counter() - began < spec["seconds"]:
            p, m, q = iteration(predictor, images)
            pre.append(p / len(images))
            model.append(m)
            post.append(q / len(images))
        return {"model": summarize(model), "pre": summarize(pre), "post": summarize(post)}

    batches, first_run_s = [], None
    for batch_size in spec["batch_sizes"]:
        images = [sources[i % len(sources)] for i in range(batch_size)]
        reset_peak_rss()
        if gpu:
            gpu.reset()
        # Several models (the single-task set): all stay loaded; each is timed alone in turn, so that
        # one runtime's idle threads (onnxruntime's spin-waiting pool) do not slow the next one down.
        stats = [timed(predictor, images) for predictor in predictors]
        _, peak = rss()
        batches.append(
            {
                "batch": batch_size,
                "model_ms": sum_stats([s["model"] for s in stats]),
                "per_model_ms": [s["model"] for s in stats],
                "preprocess_ms_per_image": sum_stats([s["pre"] for s in stats]),
                "postprocess_ms_per_image": sum_stats([s["post"] for s in stats]),
                "peak_rss_bytes": peak,
                "gpu_memory": gpu.read() if gpu else None,
            }
        )
    _, peak_total = rss()
    result: dict[str, Any] = {
        "pid": os.getpid(),
        "backend_choice": [p.backend_choice for p in predictors],
        "providers": [getattr(p.backend, "providers", None) for p in predictors],
        "torch_threads": torch.get_num_threads(),
        "load_s": load_s,
        "first_run_s": first_run_s,
        "rss_baseline_bytes": baseline_rss,
        "rss_after_load_bytes": after_load_rss,
        # loading (graph optimisation, engine building) can peak above steady-state inference
        "peak_rss_load_bytes": load_peak_rss,
        "peak_rss_bytes": max([peak_total, load_peak_rss] + [b["peak_rss_bytes"] for b in batches]),
        "peak_rss_resettable": peak_resettable,
        "batches": batches,
    }
    if spec.get("quality"):
        result["quality"] = quality(predictors[0], spec["quality"])
    return result


def quality(predictor, settings: dict[str, Any]) -> dict[str, Any]:
    """After the timing (so it cannot disturb the memory figures): parity of this backend's outputs
    with the PyTorch fp32 graph on the export's fixed parity scenes, and the task metrics on held-out
    scenes (the metric cost of the precision)."""
    from onepass.export.parity import parity

    package = predictor.package
    checks = parity(package, predictor.backend.run)
    found: dict[str, Any] = {
        "parity": [
            {
                "output": c.output,
                "measure": c.measure,
                "value": float(c.value),
                "limit": float(c.limit),
                "higher_is_better": c.higher_is_better,
                "passed": bool(c.passed),
            }
            for c in checks
        ]
    }
    if settings.get("metric_images"):
        from onepass.export.quality import graph_metrics

        found["metrics"] = graph_metrics(package, predictor.backend.run, metric_examples(package, settings))
    return found


def metric_examples(package, settings: dict[str, Any]):
    """The scenes the metric cost is measured on: a labelled folder dataset when given, else the export
    stage's held-out synthetic scenes (the same ones `onepass export` reports)."""
    from onepass.export.quality import folder_examples, held_out_scenes

    count = int(settings["metric_images"])
    if settings.get("eval_data"):
        return folder_examples(package, settings["eval_data"], count)
    return held_out_scenes(package, count)


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = {"status": "ok", **measure(spec)}
    except Exception as error:  # reported as this configuration's status; the bench goes on
        result = {
            "status": "error",
            "error": f"{type(error).__name__}: {error}".splitlines()[0][:500],
            "traceback": traceback.format_exc()[-4000:],
        }
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
