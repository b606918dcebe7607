"""`onepass bench MODEL`: every planned variant measured in its own worker process, then the derived
figures (images/s, achieved FLOP/s against the matmul roofline, one-pass / single-task ratios, the
cost of a head) computed from the measured values into one `ModelBenchDocument`."""

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

import numpy as np

from onepass.bench.document import DocumentError, from_json, to_json
from onepass.bench.machine import describe_machine, peak_for, roofline, source_revision, versions
from onepass.bench.plan import FORMATS, BenchError, BenchSettings, Planned, device_kind, plan_variants
from onepass.bench.prepare import (
    PreparedFile,
    check_head_cost,
    count_model,
    mirror_package,
    prepare_file,
    single_task_packages,
    size_text,
    without_task_package,
)
from onepass.bench.records import (
    FileInfo,
    Goal,
    HeadCost,
    HeadCostBatch,
    MatmulPeak,
    Measured,
    Measurement,
    ModelBenchDocument,
    ModelCounts,
    ModelInfo,
    QualitySpec,
    RelatedModel,
    RooflineFraction,
    SetRun,
    SingleTaskComparison,
    SingleTaskRatio,
    SizeRecord,
    VariantResult,
    WorkerOutcome,
    WorkerSpec,
)
from onepass.bench.timing import ratio
from onepass.bench.worker import plain_metrics, source_key
from onepass.runtime.cpu import features_text

SOURCE_SEED = 20261125  # the camera frames every variant is timed on
MAX_SOURCES = 4  # distinct frames per source size; larger batches repeat them (a 480x640 frame takes ~0.5 s)
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


def render_sources(path: Path, sizes: tuple[tuple[int, int], ...], count: int) -> Path:
    """`count` synthetic camera frames of every source size, in one .npz keyed by size."""
    from onepass.data.synth import render_scene

    frames = {
        source_key(size): np.stack(
            [render_scene(np.random.default_rng([SOURCE_SEED, i]), *size).image for i in range(count)]
        )
        for size in sizes
    }
    np.savez(path, **frames)
    return path


def run_worker(spec: WorkerSpec, root: Path, name: str) -> WorkerOutcome:
    """One configuration in a fresh `python -m onepass.bench.worker` process."""
    spec_path, out_path = root / f"{name}.spec.json", root / f"{name}.result.json"
    spec_path.write_text(json.dumps(to_json(spec)))
    out_path.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "onepass.bench.worker", str(spec_path), str(out_path)],
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return WorkerOutcome("error", error=f"worker did not finish within {WORKER_TIMEOUT_S} s")
    if done.returncode != 0 or not out_path.is_file():
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return WorkerOutcome("error", error=f"worker exited with status {done.returncode}: {tail[0][:300]}")
    try:
        return from_json(WorkerOutcome, json.loads(out_path.read_text()), str(out_path))
    except (DocumentError, json.JSONDecodeError) as error:
        return WorkerOutcome("error", error=f"unreadable worker result: {error}"[:300])


def derive(m: Measurement, flops_per_image: int | None, peak: tuple[str, float] | None) -> Measurement:
    """ms per image, images/s (batch / mean model time), end-to-end ms per image, and achieved FLOP/s
    as a fraction of the matmul peak, from the measured samples."""
    ms_per_image = m.model_ms.p50 / m.batch
    images_per_s = m.batch / (m.model_ms.mean / 1e3)
    flops_per_s = flops_per_image * images_per_s if flops_per_image else None
    return dataclasses.replace(
        m,
        ms_per_image=ms_per_image,
        images_per_s=images_per_s,
        end_to_end_ms_per_image=m.preprocess_ms_per_image.p50 + ms_per_image + m.postprocess_ms_per_image.p50,
        flops_per_s=flops_per_s,
        roofline=RooflineFraction(peak[0], flops_per_s / peak[1]) if flops_per_s and peak else None,
    )


def derive_measured(measured: Measured, flops_per_image: int | None, peak: tuple[str, float] | None) -> Measured:
    return dataclasses.replace(
        measured, measurements=tuple(derive(m, flops_per_image, peak) for m in measured.measurements)
    )


def memory_above_baseline(measured: Measured, m: Measurement) -> int:
    """Peak RSS while this measurement ran, minus the worker's RSS before any model was loaded."""
    return m.peak_rss_bytes - measured.rss_baseline_bytes


def compare_single_task(
    one: Measured, one_counts: ModelCounts, one_file: FileInfo, single: SetRun, single_counts: list[ModelCounts]
) -> SingleTaskComparison:
    """One-pass / sum-of-single-task ratios, from the two measured runs (same run, same settings).

    latency: median model time of one batch, against the sum of the N models' medians on the same
    batch (each timed alone, all N loaded). end_to_end adds each predictor's own pre- and
    post-processing. memory: RSS above the process baseline, one model against all N loaded."""
    ratios = [
        SingleTaskRatio(
            batch=m.batch,
            source_size=m.source_size,
            one_pass_ms=m.model_ms.p50,
            single_task_sum_ms=s.model_ms.p50,
            single_task_ms={task: t.p50 for task, t in zip(single.tasks, s.per_model_ms, strict=True)},
            latency_ratio=ratio(m.model_ms.p50, s.model_ms.p50),
            end_to_end_ratio=ratio(m.end_to_end_ms_per_image, s.end_to_end_ms_per_image),
            memory_ratio=ratio(memory_above_baseline(one, m), memory_above_baseline(single.measured, s)),
        )
        for m, s in one.paired(single.measured)
    ]
    return SingleTaskComparison(
        batches=tuple(ratios),
        parameters_ratio=ratio(one_counts.parameters, sum(c.parameters for c in single_counts)),
        flops_ratio=ratio(one_counts.flops_per_image, sum(c.flops_per_image for c in single_counts)),
        file_bytes_ratio=ratio(one_file.bytes, single.file.bytes),
    )


def goal_check(variant_format: str, comparison: SingleTaskComparison, device: str) -> Goal | None:
    if variant_format != GOAL["format"] or device_kind(device) != GOAL["device"]:
        return None
    ratios = [b.latency_ratio for b in comparison.batches if b.latency_ratio is not None]
    if not ratios:
        return None
    return Goal(latency_ratio_max=max(ratios), goal=GOAL["latency_ratio"], met=max(ratios) <= GOAL["latency_ratio"])


def head_cost(one: Measured, without: SetRun, counts_with: ModelCounts, counts_without: ModelCounts) -> HeadCost:
    """The model with every head against the same model without one, per batch and source size."""
    pairs = one.paired(without.measured) if without.measured is not None else ()
    batches = [
        HeadCostBatch(
            batch=m.batch,
            source_size=m.source_size,
            with_ms=m.model_ms.p50,
            without_ms=w.model_ms.p50,
            with_end_to_end_ms_per_image=m.end_to_end_ms_per_image,
            without_end_to_end_ms_per_image=w.end_to_end_ms_per_image,
        )
        for m, w in pairs
    ]
    return HeadCost(
        run=without,
        flops_with=counts_with.flops_per_image,
        flops_without=counts_without.flops_per_image,
        parameters_with=counts_with.parameters,
        parameters_without=counts_without.parameters,
        batches=tuple(batches),
    )


def _worker_spec(settings: BenchSettings, planned: Planned, packages: list, device: str, sources: Path) -> WorkerSpec:
    spec = FORMATS[planned.variant.format]
    return WorkerSpec(
        packages=tuple(str(p.path) for p in packages),
        backend=spec.backend,
        compile=spec.compile,
        precision=planned.variant.precision,
        device=device,
        batch_sizes=tuple(settings.batch_sizes),
        source_sizes=tuple(settings.source_sizes),
        sources=str(sources),
        warmup=settings.warmup,
        iters=settings.iters,
        seconds=settings.seconds,
        threads=settings.threads,
    )


def _file_info(files: list[PreparedFile]) -> FileInfo:
    exported = [f.export_s for f in files if f.export_s is not None]
    return FileInfo(tuple(f.path.name for f in files), sum(f.bytes for f in files), sum(exported) if exported else None)


def _error_text(prefix: str, error: Exception) -> str:
    return f"{prefix}{type(error).__name__}: {error}".splitlines()[0][:300]


def run_bench(settings: BenchSettings, command: str = "", log: Log = _stderr) -> ModelBenchDocument:
    import torch

    from onepass.models.package import open_package
    from onepass.runtime.predictor import resolve_device

    began = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    package = open_package(settings.model)
    device = resolve_device(settings.device)
    if device_kind(device) == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: no CUDA GPU is visible to torch here")
    planned = plan_variants(settings, device)
    check_head_cost(package, settings.head_cost)  # a wrong option fails before any work
    if settings.threads:
        torch.set_num_threads(settings.threads)
    input_sizes = settings.input_sizes or (tuple(package.config.input_size),)
    machine = describe_machine(device)
    log(f"bench: {package.name} on {device}; CPU features: {features_text(machine.cpu_flags)}")
    for item in planned:
        if item.skip:
            log(f"bench: {item.variant.label}: skipped ({item.skip})")
    log("bench: measuring the matmul roofline")
    peaks = roofline(device, settings.roofline_seconds)
    sizes, variants = [], []
    with work_directory(settings.workdir) as root:
        sources = render_sources(
            root / "sources.npz", tuple(settings.source_sizes), min(max(settings.batch_sizes), MAX_SOURCES)
        )
        for size in input_sizes:
            measure = _SizeBench(settings, device, package, tuple(size), root, sources, peaks, log)
            sizes.append(measure.record)
            variants += [measure.variant(item) for item in planned]
    return ModelBenchDocument(
        command=command,
        date=date,
        device=device,
        machine=machine,
        versions=versions(),
        source=source_revision(),
        settings=settings,
        model=ModelInfo(
            name=package.name,
            path=str(package.path),
            encoder=package.config.encoder,
            architecture=package.config.architecture,
            input_size=tuple(package.config.input_size),
            tasks=tuple(t.name for t in package.config.tasks),
        ),
        metric_directions={t.name: t.metric_directions() for t in package.config.tasks},
        roofline=peaks,
        sizes=tuple(sizes),
        variants=tuple(variants),
        elapsed_s=time.perf_counter() - began,
    )


class _SizeBench:
    """One input size: the packages at that size (the model, the single-task set, the model without
    each --head-cost task), what is counted once for them, and every variant measured on them."""

    def __init__(
        self,
        settings: BenchSettings,
        device: str,
        package,
        size: tuple[int, int],
        root: Path,
        sources: Path,
        peaks: dict[str, MatmulPeak],
        log: Log,
    ):
        self.settings, self.device, self.size, self.root, self.sources, self.peaks, self.log = (
            settings, device, size, root, sources, peaks, log,
        )  # fmt: skip
        self.sized = mirror_package(package, size, root)
        self.counts = count_model(self.sized)
        record = SizeRecord(input_size=size, counts=self.counts)
        own_size = size == tuple(package.config.input_size)
        if settings.metric_images and own_size:  # metrics at the size the model was trained at
            try:
                record = dataclasses.replace(record, reference_metrics=_reference_metrics(self.sized, settings, log))
            except Exception as error:  # e.g. a model whose classes are not the synthetic scenes'
                record = dataclasses.replace(record, metrics_error=_error_text("", error))
                log(f"bench: no metric cost measured: {record.metrics_error}")
        self.singles, self.single_counts = [], []
        if settings.vs_single_task:
            self.singles = single_task_packages(package, size, root, settings.single_task_models)
            self.single_counts = [count_model(s) for s in self.singles]
            related = tuple(
                RelatedModel((s.config.tasks[0].name,), str(s.path), c)
                for s, c in zip(self.singles, self.single_counts, strict=True)
            )
            record = dataclasses.replace(record, single_task=related)
        self.without = [without_task_package(package, task, size, root) for task in settings.head_cost]
        self.without_counts = [count_model(w) for w in self.without]
        related = tuple(
            RelatedModel((task,), str(w.path), c)
            for task, w, c in zip(settings.head_cost, self.without, self.without_counts, strict=True)
        )
        self.record = dataclasses.replace(record, without=related)

    def variant(self, item: Planned) -> VariantResult:
        variant, size = item.variant, self.size
        entry = VariantResult(
            format=variant.format,
            precision=variant.precision,
            label=variant.label,
            input_size=size,
            status="skipped" if item.skip else "ok",
            reason=item.skip,
        )
        if item.skip:
            return entry
        where = f"{variant.label} {size_text(size)}"
        try:
            file = prepare_file(self.sized, variant, self.device, max(self.settings.batch_sizes))
        except Exception as error:  # an export that fails is this row's result, not the end of the bench
            entry = dataclasses.replace(entry, status="error", reason=_error_text("export failed: ", error))
            self.log(f"bench: {where}: {entry.reason}")
            return entry
        if file.export_s is not None:
            self.log(f"bench: exported {file.path.name} for {size_text(size)} in {file.export_s:.1f} s")
        quality = QualitySpec(
            self.settings.metric_images if self.record.reference_metrics is not None else 0, self.settings.eval_data
        )
        spec = dataclasses.replace(self._spec(item, [self.sized]), quality=quality)
        self.log(f"bench: {where}: measuring batch sizes {list(self.settings.batch_sizes)}")
        outcome = run_worker(spec, self.root, self._name(item))
        if outcome.status != "ok":
            entry = dataclasses.replace(entry, status="error", reason=outcome.error)
            self.log(f"bench: {where}: {entry.reason}")
            return entry
        peak = peak_for(variant.precision, self.peaks)
        measured = derive_measured(outcome.measured, self.counts.flops_per_image, peak)
        file_info = _file_info([file])
        entry = dataclasses.replace(entry, file=file_info, measured=measured)
        if self.singles:
            single = self._set_run(item, self.singles, tuple(t.config.tasks[0].name for t in self.singles), "single")
            single = self._derived(single, sum(c.flops_per_image for c in self.single_counts), peak)
            entry = dataclasses.replace(entry, single_task=single)
            if single.status == "ok":
                comparison = compare_single_task(measured, self.counts, file_info, single, self.single_counts)
                comparison = dataclasses.replace(comparison, goal=goal_check(variant.format, comparison, self.device))
                entry = dataclasses.replace(entry, vs_single_task=comparison)
        costs = []
        for task, without, counts in zip(self.settings.head_cost, self.without, self.without_counts, strict=True):
            run = self._derived(
                self._set_run(item, [without], (task,), f"without-{task}"), counts.flops_per_image, peak
            )
            costs.append(head_cost(measured, run, self.counts, counts))
        return dataclasses.replace(entry, head_costs=tuple(costs))

    def _spec(self, item: Planned, packages: list) -> WorkerSpec:
        return _worker_spec(self.settings, item, packages, self.device, self.sources)

    def _name(self, item: Planned) -> str:
        return f"{item.variant.format}-{item.variant.precision}-{size_text(self.size)}"

    def _set_run(self, item: Planned, packages: list, tasks: tuple[str, ...], what: str) -> SetRun:
        try:
            files = [prepare_file(p, item.variant, self.device, max(self.settings.batch_sizes)) for p in packages]
        except Exception as error:
            return SetRun(tasks, "error", reason=_error_text("export failed: ", error))
        self.log(f"bench: {item.variant.label} {size_text(self.size)}: {what} ({', '.join(tasks)})")
        outcome = run_worker(self._spec(item, packages), self.root, f"{self._name(item)}-{what}")
        if outcome.status != "ok":
            return SetRun(tasks, "error", reason=outcome.error)
        return SetRun(tasks, "ok", file=_file_info(files), measured=outcome.measured)

    @staticmethod
    def _derived(run: SetRun, flops_per_image: int, peak) -> SetRun:
        if run.measured is None:
            return run
        return dataclasses.replace(run, measured=derive_measured(run.measured, flops_per_image, peak))


def _reference_metrics(package, settings: BenchSettings, log: Log) -> dict | None:
    from onepass.bench.worker import metric_examples
    from onepass.export.parity import torch_runner
    from onepass.export.quality import graph_metrics

    where = settings.eval_data or "held-out synthetic scenes"
    log(f"bench: reference metrics of the PyTorch fp32 model on {settings.metric_images} images of {where}")
    examples = metric_examples(package, QualitySpec(settings.metric_images, settings.eval_data))
    return plain_metrics(graph_metrics(package, torch_runner(package), examples))
