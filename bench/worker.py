"""One measured configuration, in a process of its own: `python -m onepass.bench.worker SPEC OUT`
(SPEC a `WorkerSpec`, OUT a `WorkerOutcome`, both JSON).

A fresh process per (format, precision, input size) makes peak memory mean something (nothing left
over from an earlier backend's arenas or allocator caches) and keeps thread pools independent.
Several packages in one spec (the single-task set) are loaded side by side, as a deployment of N
models would hold them (that is the memory figure), and each is timed alone in turn on the same
images; the set's statistics are the sums of the models' own.

Each timed call is one `predict`, through the Predictor's three public phases, each timed: preprocess
(resize + stack), model (`run`) and post-process (each task's result at the source frame's size),
for every batch size and every source size (camera frame) asked for.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from onepass.bench.document import from_json, to_json
from onepass.bench.records import (
    GpuMemory,
    Measured,
    Measurement,
    ParityCheck,
    Quality,
    QualitySpec,
    WorkerOutcome,
    WorkerSpec,
)
from onepass.bench.timing import LatencyStats, predict_phases, time_calls

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


class GpuMeter:
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

    def read(self) -> GpuMemory:
        process = None
        if self.nvml is not None:
            try:
                for proc in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
                    if proc.pid == os.getpid():
                        process = int(proc.usedGpuMemory or 0)
            except Exception:
                process = None
        return GpuMemory(int(self.torch.cuda.max_memory_allocated(self.index)), process)


def source_key(size: tuple[int, int]) -> str:
    """The key of one source size's frames in the sources .npz."""
    return f"{size[0]}x{size[1]}"


def measure(spec: WorkerSpec) -> Measured:
    import torch

    import onepass

    if spec.threads:
        torch.set_num_threads(spec.threads)
    with np.load(spec.sources) as archive:
        sources = {tuple(size): list(archive[source_key(size)]) for size in spec.source_sizes}
    gpu = GpuMeter(spec.device) if spec.device.startswith("cuda") else None
    baseline_rss, _ = rss()
    peak_resettable = reset_peak_rss()

    predictors, load_s = [], []
    for path in spec.packages:
        start = time.perf_counter()
        predictors.append(
            onepass.load(path, backend=spec.backend, device=spec.device, precision=spec.precision, compile=spec.compile)
        )
        load_s.append(time.perf_counter() - start)
    after_load_rss, load_peak_rss = rss()

    first_run_s = None
    measurements = []
    for batch_size in spec.batch_sizes:
        for source_size in spec.source_sizes:
            frames = sources[tuple(source_size)]
            images = [frames[i % len(frames)] for i in range(batch_size)]
            reset_peak_rss()
            if gpu:
                gpu.reset()
            # Several models (the single-task set): all stay loaded; each is timed alone in turn, so that
            # one runtime's idle threads (onnxruntime's spin-waiting pool) do not slow the next one down.
            timings = [time_predict(predictor, images, spec) for predictor in predictors]
            if first_run_s is None:
                first_run_s = timings[0].first_call_s  # includes compilation / engine building
            _, peak = rss()
            per_image = 1 / batch_size
            measurements.append(
                Measurement(
                    batch=batch_size,
                    source_size=tuple(source_size),
                    model_ms=LatencyStats.summed([t.phases["model"] for t in timings]),
                    per_model_ms=tuple(t.phases["model"] for t in timings),
                    preprocess_ms_per_image=LatencyStats.summed([t.phases["preprocess"] for t in timings]).scaled(
                        per_image
                    ),
                    postprocess_ms_per_image=LatencyStats.summed([t.phases["postprocess"] for t in timings]).scaled(
                        per_image
                    ),
                    peak_rss_bytes=peak,
                    gpu_memory=gpu.read() if gpu else None,
                )
            )
    _, peak_total = rss()
    return Measured(
        pid=os.getpid(),
        backend_choice=tuple(p.backend_choice for p in predictors),
        providers=tuple(_providers(p) for p in predictors),
        torch_threads=torch.get_num_threads(),
        load_s=tuple(load_s),
        first_run_s=first_run_s,
        rss_baseline_bytes=baseline_rss,
        rss_after_load_bytes=after_load_rss,
        peak_rss_load_bytes=load_peak_rss,
        peak_rss_bytes=max([peak_total, load_peak_rss or 0] + [m.peak_rss_bytes for m in measurements]),
        peak_rss_resettable=peak_resettable,
        measurements=tuple(measurements),
        quality=quality(predictors[0], spec.quality) if spec.quality else None,
    )


def time_predict(predictor, images: list[np.ndarray], spec: WorkerSpec):
    """`predict` on `images`, timed phase by phase (the bench's `Timing`, phases named as PREDICT_PHASES):
    on a backend with the frame-size graph, `predict`'s frame path, else the resize path."""
    frames = predictor.runs_frames and len({image.shape[:2] for image in images}) == 1
    return time_calls(
        lambda: predict_phases(predictor, images, frames),
        warmup=spec.warmup,
        runs=spec.iters,
        seconds=spec.seconds,
        items=len(images),
    )


def _providers(predictor) -> tuple[str, ...] | None:
    providers = getattr(predictor.backend, "providers", None)
    return None if providers is None else tuple(providers)


def quality(predictor, settings: QualitySpec) -> Quality:
    """After the timing (so it cannot disturb the memory figures): parity of this backend's outputs
    with the PyTorch fp32 graph on the export's fixed parity scenes, and the task metrics on held-out
    scenes (the metric cost of the precision)."""
    from onepass.export.parity import parity

    package = predictor.package
    checks = tuple(
        ParityCheck(c.output, c.measure, float(c.value), float(c.limit), c.higher_is_better, bool(c.passed))
        for c in parity(package, predictor.run)
    )
    metrics = None
    if settings.metric_images:
        from onepass.export.quality import graph_metrics

        metrics = plain_metrics(graph_metrics(package, predictor.run, metric_examples(package, settings)))
    return Quality(parity=checks, metrics=metrics)


def plain_metrics(metrics) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} with plain floats (metrics may compute numpy scalars)."""
    return {task: {name: float(value) for name, value in values.items()} for task, values in metrics.items()}


def metric_examples(package, settings: QualitySpec):
    """The scenes the metric cost is measured on: a labelled folder dataset when given, else the export
    stage's held-out synthetic scenes (the same ones `onepass export` reports)."""
    from onepass.export.quality import folder_examples, held_out_scenes

    if settings.eval_data:
        return folder_examples(package, settings.eval_data, settings.metric_images)
    return held_out_scenes(package, settings.metric_images)


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    spec = from_json(WorkerSpec, json.loads(Path(spec_path).read_text()), spec_path)
    try:
        outcome = WorkerOutcome("ok", measured=measure(spec))
    except Exception as error:  # reported as this configuration's status; the bench goes on
        outcome = WorkerOutcome(
            "error",
            error=f"{type(error).__name__}: {error}".splitlines()[0][:500],
            traceback=traceback.format_exc()[-4000:],
        )
    Path(out_path).write_text(json.dumps(to_json(outcome), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
