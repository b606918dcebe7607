"""The tables and summary lines of `onepass bench MODEL`, from its `ModelBenchDocument`."""

from __future__ import annotations

from dataclasses import dataclass

from onepass.bench.records import (
    Measurement,
    ModelBenchDocument,
    RooflineFraction,
    SetRun,
    Size,
    VariantResult,
)
from onepass.bench.tables import DASH, Table, gflop, mb, ms, number, signed_ms, size_text, times
from onepass.bench.timing import LatencyStats
from onepass.runtime.cpu import features_text


# ---- model time per variant, batch and source size --------------------------------------------
@dataclass(frozen=True)
class MetricCost:
    """The largest relative worsening of any task metric against PyTorch fp32; metric None: none worse."""

    metric: str | None
    relative: float

    def text(self) -> str:
        return "none" if self.metric is None else f"{self.metric} -{self.relative * 100:.2g} %"


@dataclass(frozen=True)
class VariantRow:
    """What every per-variant row starts with: the variant, and the batch and source size measured
    (none when the variant did not run: `status` and `reason` say why)."""

    label: str
    input_size: Size
    status: str
    reason: str | None = None
    source_size: Size | None = None
    batch: int | None = None

    @classmethod
    def measured(cls, entry: VariantResult, batch, **fields):
        """The row of `entry` for one measured batch and source size (`batch` has both)."""
        return cls(entry.label, entry.input_size, "ok", source_size=batch.source_size, batch=batch.batch, **fields)

    def refused_cells(self, head: tuple[str, ...], width: int) -> tuple[str, ...]:
        """A row for a run that did not happen: its first cells, then the reason, the rest empty."""
        return (*head, DASH, DASH, f"{self.status}: {self.reason}", *[""] * (width - len(head) - 3))


@dataclass(frozen=True)
class ResultRow(VariantRow):
    file_bytes: int | None = None
    parity_passed: int | None = None
    parity_checks: int | None = None
    metric_cost: MetricCost | None = None
    model_ms: LatencyStats | None = None
    ms_per_image: float | None = None
    images_per_s: float | None = None
    preprocess_ms: float | None = None  # per image, medians
    postprocess_ms: float | None = None
    end_to_end_ms: float | None = None
    peak_rss_bytes: int | None = None
    rss_above_baseline_bytes: int | None = None
    flops_per_s: float | None = None
    roofline: RooflineFraction | None = None
    gpu_bytes: int | None = None
    with_gpu: bool = False

    COLUMNS = (
        "format", "input", "source", "batch", "status", "size", "parity", "metric cost", "p50 ms", "p90 ms", "p99 ms",
        "ms/img", "img/s", "pre + post ms/img", "end-to-end ms/img", "peak RSS (+model)", "GFLOP/s (of peak)",
    )  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        width = len(self.COLUMNS) + self.with_gpu
        if self.status != "ok":
            return self.refused_cells((self.label, size_text(self.input_size)), width)
        parity = DASH
        if self.parity_checks:
            parity = (
                "ok"
                if self.parity_passed == self.parity_checks
                else f"{self.parity_passed}/{self.parity_checks} in fp32 limits"
            )
        flops = DASH
        if self.flops_per_s is not None:
            flops = f"{self.flops_per_s / 1e9:.1f}"
            if self.roofline:
                flops += f" ({self.roofline.fraction * 100:.0f}% {self.roofline.peak})"
        cells = (
            self.label,
            size_text(self.input_size),
            size_text(self.source_size),
            str(self.batch),
            "ok",
            mb(self.file_bytes),
            parity,
            DASH if self.metric_cost is None else self.metric_cost.text(),
            ms(self.model_ms.p50),
            ms(self.model_ms.p90),
            ms(self.model_ms.p99),
            ms(self.ms_per_image),
            number(self.images_per_s),
            f"{ms(self.preprocess_ms)} + {ms(self.postprocess_ms)}",
            ms(self.end_to_end_ms),
            f"{mb(self.peak_rss_bytes)} (+{self.rss_above_baseline_bytes / 1e6:.0f})",
            flops,
        )
        return (*cells, mb(self.gpu_bytes)) if self.with_gpu else cells


def metric_deltas(
    metrics: dict | None, reference: dict | None, directions: dict[str, dict[str, bool]]
) -> list[tuple[str, str, float, float, bool]]:
    """(task, metric, value, delta, worse) for every metric the variant has, against the reference."""
    if not metrics or not reference:
        return []
    found = []
    for task, values in metrics.items():
        for metric, value in values.items():
            base = reference.get(task, {}).get(metric)
            if base is None:
                continue
            delta = value - base
            higher = directions.get(task, {}).get(metric, True)
            found.append((task, metric, value, delta, delta < 0 if higher else delta > 0))
    return found


def metric_cost(metrics: dict | None, reference: dict | None, directions: dict) -> MetricCost | None:
    deltas = metric_deltas(metrics, reference, directions)
    if not deltas:
        return None
    worst, worst_relative = None, 0.0
    for _, metric, value, delta, worse in deltas:
        base = value - delta
        relative = abs(delta) / abs(base) if base else abs(delta)
        if worse and relative > worst_relative:
            worst, worst_relative = metric, relative
    if worst is None or worst_relative < 1e-4:
        return MetricCost(None, 0.0)
    return MetricCost(worst, worst_relative)


def result_row(document: ModelBenchDocument, entry: VariantResult, m: Measurement) -> ResultRow:
    measured = entry.measured
    size = document.size(entry.input_size)
    quality = measured.quality
    gpu = m.gpu_memory
    return ResultRow(
        label=entry.label,
        input_size=entry.input_size,
        status="ok",
        source_size=m.source_size,
        batch=m.batch,
        file_bytes=entry.file.bytes if entry.file else None,
        parity_passed=sum(c.passed for c in quality.parity) if quality else None,
        parity_checks=len(quality.parity) if quality else None,
        metric_cost=metric_cost(
            quality.metrics if quality else None,
            size.reference_metrics if size else None,
            document.metric_directions,
        ),
        model_ms=m.model_ms,
        ms_per_image=m.ms_per_image,
        images_per_s=m.images_per_s,
        preprocess_ms=m.preprocess_ms_per_image.p50,
        postprocess_ms=m.postprocess_ms_per_image.p50,
        end_to_end_ms=m.end_to_end_ms_per_image,
        peak_rss_bytes=m.peak_rss_bytes,
        rss_above_baseline_bytes=m.peak_rss_bytes - measured.rss_baseline_bytes,
        flops_per_s=m.flops_per_s,
        roofline=m.roofline,
        gpu_bytes=None if gpu is None else (gpu.process_bytes or gpu.torch_peak_bytes),
        with_gpu=document.device.startswith("cuda"),
    )


def results_table(document: ModelBenchDocument) -> Table:
    cuda = document.device.startswith("cuda")
    rows: list[ResultRow] = []
    for entry in document.variants:
        if entry.status != "ok":
            rows.append(ResultRow(entry.label, entry.input_size, entry.status, entry.reason, with_gpu=cuda))
            continue
        rows += [result_row(document, entry, m) for m in entry.measured.measurements]
    sources = ", ".join(size_text(s) for s in document.settings.source_sizes)
    note = (
        "Latency is model time (`Predictor.run`; with the frame-size graph `run_frames`, its resizes included) per "
        "batch; pre = resize + stack (frame-size graph: stack), post = each task's result at the "
        f"source frame's size ({sources}); end-to-end = pre + model + post per image, from a decoded frame. "
        "img/s = batch / mean model time. parity: agreement with PyTorch fp32 on 8 fixed scenes, by the export's "
        "fp32 limits. metric cost: largest relative loss of any task metric against PyTorch fp32 on held-out scenes. "
        "peak RSS: the worker process's peak while that batch size ran (+model: above its RSS before loading)."
    )
    columns = ResultRow.COLUMNS + (("GPU mem",) if cuda else ())
    return Table("model time per backend, precision, input size, source size and batch", columns, tuple(rows), note)


# ---- FLOPs per module ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModuleRow:
    input_size: Size
    module: str
    parameters: int
    flops_per_image: int
    total_flops: int

    def cells(self) -> tuple[str, ...]:
        share = self.flops_per_image / self.total_flops if self.total_flops else None
        return (
            size_text(self.input_size),
            self.module,
            f"{self.parameters / 1e6:.3f}",
            gflop(self.flops_per_image),
            DASH if share is None else f"{share * 100:.1f} %",
        )


def modules_table(document: ModelBenchDocument) -> Table | None:
    rows = tuple(
        ModuleRow(size.input_size, m.module, m.parameters, m.flops_per_image, size.counts.flops_per_image)
        for size in document.sizes
        for m in size.counts.modules
    )
    if not rows:
        return None
    note = (
        "Per part of the network, by its path in the model (encoder, decoder, each head), counted by torch's "
        "FlopCounterMode on the inference graph at batch 1; the parts sum to the model's totals."
    )
    return Table("FLOPs per module", ("input", "module", "M parameters", "GFLOP/img", "share"), rows, note)


# ---- a head's cost --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class HeadCostRow(VariantRow):
    head: str
    with_ms: float | None = None
    without_ms: float | None = None
    with_end_to_end_ms: float | None = None
    without_end_to_end_ms: float | None = None
    flops_with: int | None = None
    flops_without: int | None = None

    COLUMNS = (
        "format", "input", "head", "source", "batch", "with ms", "without ms", "the head's ms",
        "end-to-end ms/img with / without", "GFLOP/img with / without", "the head's FLOPs",
    )  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        head = (self.label, size_text(self.input_size), self.head)
        if self.status != "ok":
            return self.refused_cells(head, len(self.COLUMNS))
        cost = self.with_ms - self.without_ms
        flops_cost = self.flops_with - self.flops_without
        return (
            *head,
            size_text(self.source_size),
            str(self.batch),
            ms(self.with_ms),
            ms(self.without_ms),
            f"{signed_ms(cost)} ({cost / self.with_ms * 100:+.0f} %)" if self.with_ms else DASH,
            f"{ms(self.with_end_to_end_ms)} / {ms(self.without_end_to_end_ms)}",
            f"{gflop(self.flops_with)} / {gflop(self.flops_without)}",
            f"{gflop(flops_cost)} ({flops_cost / self.flops_with * 100:.1f} %)" if self.flops_with else DASH,
        )


def head_cost_table(document: ModelBenchDocument) -> Table | None:
    rows: list[HeadCostRow] = []
    for entry in document.variants:
        for cost in entry.head_costs:
            (task,) = cost.run.tasks
            if cost.run.status != "ok":
                rows.append(HeadCostRow(entry.label, entry.input_size, cost.run.status, cost.run.reason, head=task))
                continue
            rows += [
                HeadCostRow.measured(
                    entry,
                    b,
                    head=task,
                    with_ms=b.with_ms,
                    without_ms=b.without_ms,
                    with_end_to_end_ms=b.with_end_to_end_ms_per_image,
                    without_end_to_end_ms=b.without_end_to_end_ms_per_image,
                    flops_with=cost.flops_with,
                    flops_without=cost.flops_without,
                )
                for b in cost.batches
            ]
    if not rows:
        return None
    note = (
        "The model against the same model without that task (its weights, less the head and what only it used), "
        "measured in the same run, each in a worker of its own: median model time per batch, end-to-end per image "
        "(pre + model + post), and FLOPs per image."
    )
    return Table("the cost of a head: with and without it", HeadCostRow.COLUMNS, tuple(rows), note)


# ---- one pass against single-task models --------------------------------------------------------
@dataclass(frozen=True)
class SingleTaskRow(VariantRow):
    one_pass_ms: float | None = None
    single_task_sum_ms: float | None = None
    per_task_ms: tuple[float, ...] = ()
    latency_ratio: float | None = None
    end_to_end_ratio: float | None = None
    memory_ratio: float | None = None
    parameters_ratio: float | None = None
    flops_ratio: float | None = None
    file_bytes_ratio: float | None = None
    goal: str = DASH

    COLUMNS = (
        "format", "input", "source", "batch", "one-pass ms", "single-task ms (sum)", "per task ms",
        "latency", "end-to-end", "memory", "parameters", "FLOPs", "file size", "goal",
    )  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        head = (self.label, size_text(self.input_size))
        if self.status != "ok":
            return self.refused_cells(head, len(self.COLUMNS))
        return (
            *head,
            size_text(self.source_size),
            str(self.batch),
            ms(self.one_pass_ms),
            ms(self.single_task_sum_ms),
            " + ".join(ms(v) for v in self.per_task_ms),
            times(self.latency_ratio),
            times(self.end_to_end_ratio),
            times(self.memory_ratio),
            times(self.parameters_ratio),
            times(self.flops_ratio),
            times(self.file_bytes_ratio),
            self.goal,
        )


def vs_single_task_table(document: ModelBenchDocument) -> Table | None:
    rows: list[SingleTaskRow] = []
    for entry in document.variants:
        single: SetRun | None = entry.single_task
        if single is None:
            continue
        vs = entry.vs_single_task
        if vs is None:
            rows.append(SingleTaskRow(entry.label, entry.input_size, single.status, single.reason))
            continue
        goal = DASH if vs.goal is None else f"≤ {vs.goal.goal:.2f}x: {'met' if vs.goal.met else 'NOT met'}"
        rows += [
            SingleTaskRow.measured(
                entry,
                b,
                one_pass_ms=b.one_pass_ms,
                single_task_sum_ms=b.single_task_sum_ms,
                per_task_ms=tuple(b.single_task_ms.values()),
                latency_ratio=b.latency_ratio,
                end_to_end_ratio=b.end_to_end_ratio,
                memory_ratio=b.memory_ratio,
                parameters_ratio=vs.parameters_ratio,
                flops_ratio=vs.flops_ratio,
                file_bytes_ratio=vs.file_bytes_ratio,
                goal=goal,
            )
            for b in vs.batches
        ]
    if not rows:
        return None
    tasks = document.model.tasks
    note = (
        f"Ratios are one-pass / the {len(tasks)} single-task models ({', '.join(tasks)}: same encoder, architecture "
        "and input size), measured in the same run. latency: median model time of a batch against the sum of the "
        "N models' medians on it (per task ms in that order; all N loaded, each timed alone in turn); end-to-end "
        "adds each predictor's pre- and post-processing; memory: peak RSS above the process's baseline, one "
        "model against all N loaded."
    )
    return Table("one pass against one single-task model per task", SingleTaskRow.COLUMNS, tuple(rows), note)


# ---- the metric cost of each precision ----------------------------------------------------------
@dataclass(frozen=True)
class MetricCostRow:
    task: str
    metric: str
    higher_is_better: bool
    reference: float
    values: tuple[float | None, ...]  # one per measured variant, in the table's column order

    def cells(self) -> tuple[str, ...]:
        cells = [DASH if v is None else f"{v:.4g} ({v - self.reference:+.2g})" for v in self.values]
        return (self.task, f"{self.metric} {'↑' if self.higher_is_better else '↓'}", f"{self.reference:.4g}", *cells)


def precision_cost_table(document: ModelBenchDocument) -> Table | None:
    measured = [e for e in document.variants if e.measured and e.measured.quality and e.measured.quality.metrics]
    if not measured:
        return None
    size = measured[0].input_size
    record = document.size(size)
    reference = record.reference_metrics if record else None
    if not reference:
        return None
    measured = [e for e in measured if tuple(e.input_size) == tuple(size)]
    rows = []
    for task, metrics in reference.items():
        for metric, base in metrics.items():
            higher = document.metric_directions.get(task, {}).get(metric, True)
            values = tuple(e.measured.quality.metrics.get(task, {}).get(metric) for e in measured)
            rows.append(MetricCostRow(task, metric, higher, base, values))
    scenes = document.settings.metric_images
    note = f"Task metrics on {scenes} held-out synthetic scenes at {size_text(size)}; (Δ) against PyTorch fp32."
    columns = ("task", "metric", "pytorch fp32", *[e.label for e in measured])
    return Table("the metric cost of each precision", columns, tuple(rows), note)


def model_tables(document: ModelBenchDocument) -> list[Table]:
    tables = [
        results_table(document),
        modules_table(document),
        head_cost_table(document),
        vs_single_task_table(document),
        precision_cost_table(document),
    ]
    return [t for t in tables if t is not None]


def summary_lines(document: ModelBenchDocument) -> list[str]:
    machine, model = document.machine, document.model
    lines = [
        f"model {model.name} ({model.encoder}, {model.architecture}, tasks {', '.join(model.tasks)}) "
        f"on {document.device}: {machine.cpu}, {machine.usable_cores} usable cores"
        + (f", GPU {machine.gpu.name}" if machine.gpu else ""),
        f"CPU features: {features_text(machine.cpu_flags)}",
    ]
    for size in document.sizes:
        counts = size.counts
        lines.append(
            f"input {size_text(size.input_size)}: {counts.parameters / 1e6:.2f} M parameters, "
            f"{counts.flops_per_image / 1e9:.3f} GFLOP per image (torch FlopCounterMode)"
        )
        if size.metrics_error:
            lines.append(f"metric cost not measured at {size_text(size.input_size)}: {size.metrics_error}")
    for dtype, peak in document.roofline.items():
        threads = f", {peak.threads} threads" if peak.threads else ""
        lines.append(f"roofline: {dtype} matmul {peak.n}x{peak.n}: {peak.flops_per_s / 1e9:.1f} GFLOP/s{threads}")
    return lines
