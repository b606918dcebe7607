"""What the bench passes between its parts, as frozen dataclasses: the settings of a run (the plan),
the machine, each measurement (backend x precision x input size x batch x source size), the derived
comparisons, and the two documents (`onepass bench MODEL`, `onepass bench serve`).

Field names are the JSON keys (`bench/document.py` writes and reads them, versioned); every other
part of the bench reads these attributes, so a key is spelled in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from onepass.bench.plan import BenchSettings
from onepass.bench.timing import LatencyStats

Size = tuple[int, int]  # (H, W)
Metrics = dict[str, dict[str, float]]  # task -> metric -> value


# ---- where it ran ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuRecord:
    name: str
    memory_bytes: int
    capability: str
    cuda: str | None


@dataclass(frozen=True)
class MachineRecord:
    hostname: str
    os: str
    cpu: str
    logical_cores: int | None
    usable_cores: int
    cpu_flags: tuple[str, ...]  # the instruction sets that matter here (machine.CPU_FLAGS) that this CPU has
    memory_bytes: int
    load_average: tuple[float, ...] | None  # 1, 5, 15 minutes, when the run started
    gpu: GpuRecord | None = None


@dataclass(frozen=True)
class SourceRevision:
    commit: str
    local_changes: bool


@dataclass(frozen=True)
class MatmulPeak:
    """The roofline: the best FLOP/s of an (n, n) @ (n, n) matmul in this process, on this device."""

    dtype: str
    n: int
    runs: int
    flops_per_s: float
    threads: int | None  # CPU: torch's threads
    tf32: bool | None  # CUDA fp32: whether TF32 matmuls were allowed


# ---- counted once per model and input size ---------------------------------------------------
@dataclass(frozen=True)
class ModuleCount:
    """One part of the network (its path in the model: `encoder`, `heads.decoder`, `heads.dense_heads.depth`)."""

    module: str
    parameters: int
    flops_per_image: int


@dataclass(frozen=True)
class ModelCounts:
    parameters: int
    flops_per_image: int  # torch FlopCounterMode on the inference graph, batch 1
    weights_bytes: int
    modules: tuple[ModuleCount, ...] = ()  # their FLOPs sum to flops_per_image, their parameters to parameters


@dataclass(frozen=True)
class RelatedModel:
    """A model measured beside the one benched: a single-task model (`tasks` is its one task), or the
    model without some tasks' heads (`tasks` are the ones left out)."""

    tasks: tuple[str, ...]
    path: str
    counts: ModelCounts


@dataclass(frozen=True)
class SizeRecord:
    input_size: Size
    counts: ModelCounts
    reference_metrics: Metrics | None = None  # PyTorch fp32 on the metric scenes (at the model's own size)
    metrics_error: str | None = None  # why there are none
    single_task: tuple[RelatedModel, ...] = ()
    without: tuple[RelatedModel, ...] = ()  # one per --head-cost task


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    encoder: str
    architecture: str
    input_size: Size
    tasks: tuple[str, ...]


# ---- what one worker measured ----------------------------------------------------------------
@dataclass(frozen=True)
class GpuMemory:
    torch_peak_bytes: int
    process_bytes: int | None  # NVML: this process on the device, CUDA context included


@dataclass(frozen=True)
class RooflineFraction:
    peak: str  # the matmul peak compared with (its dtype)
    fraction: float


@dataclass(frozen=True)
class Measurement:
    """One batch size and source size of one variant: `predict` timed in its three phases.

    The first block is measured by the worker; the second is derived by bench/run.py from it and
    the model's counts (kept in the JSON, so that every figure shown is read from the document)."""

    batch: int
    source_size: Size
    model_ms: LatencyStats  # `Predictor.run` per batch (a set of models: the sum of theirs)
    per_model_ms: tuple[LatencyStats, ...]
    preprocess_ms_per_image: LatencyStats
    postprocess_ms_per_image: LatencyStats
    peak_rss_bytes: int  # the worker's peak while this batch and source size ran
    gpu_memory: GpuMemory | None = None
    ms_per_image: float | None = None  # median model time / batch
    images_per_s: float | None = None  # batch / mean model time
    end_to_end_ms_per_image: float | None = None  # pre + model + post, medians
    flops_per_s: float | None = None
    roofline: RooflineFraction | None = None


@dataclass(frozen=True)
class ParityCheck:
    output: str
    measure: str
    value: float
    limit: float
    higher_is_better: bool
    passed: bool


@dataclass(frozen=True)
class Quality:
    parity: tuple[ParityCheck, ...] = ()
    metrics: Metrics | None = None


@dataclass(frozen=True)
class Measured:
    """One worker process: one package, or several loaded side by side (the single-task set)."""

    pid: int
    backend_choice: tuple[str, ...]
    providers: tuple[tuple[str, ...] | None, ...]
    torch_threads: int
    load_s: tuple[float, ...]
    first_run_s: float | None  # the first call: includes compilation / engine building
    rss_baseline_bytes: int  # before any model was loaded
    rss_after_load_bytes: int
    peak_rss_load_bytes: int | None  # loading can peak above steady-state inference
    peak_rss_bytes: int
    peak_rss_resettable: bool  # whether each measurement's peak is its own (Linux) or the process's
    measurements: tuple[Measurement, ...]
    quality: Quality | None = None

    def measurement(self, batch: int, source_size: Size) -> Measurement | None:
        for m in self.measurements:
            if m.batch == batch and tuple(m.source_size) == tuple(source_size):
                return m
        return None

    def paired(self, other: Measured) -> Iterator[tuple[Measurement, Measurement]]:
        """(this run's measurement, the other's) for each batch and source size both measured."""
        for m in self.measurements:
            theirs = other.measurement(m.batch, m.source_size)
            if theirs is not None:
                yield m, theirs


@dataclass(frozen=True)
class QualitySpec:
    metric_images: int
    eval_data: str | None


@dataclass(frozen=True)
class WorkerSpec:
    """What `python -m onepass.bench.worker SPEC OUT` measures."""

    packages: tuple[str, ...]
    backend: str
    compile: bool
    precision: str
    device: str
    batch_sizes: tuple[int, ...]
    source_sizes: tuple[Size, ...]
    sources: str  # .npz: the frames of each source size, keyed "HxW"
    warmup: int
    iters: int
    seconds: float
    threads: int | None
    quality: QualitySpec | None = None


@dataclass(frozen=True)
class WorkerOutcome:
    status: str  # "ok" | "error"
    measured: Measured | None = None
    error: str | None = None
    traceback: str | None = None


# ---- per variant, and the comparisons -------------------------------------------------------
@dataclass(frozen=True)
class FileInfo:
    names: tuple[str, ...]  # what the "size" column measures: the weights, or the exported file(s)
    bytes: int
    export_s: float | None = None  # None: they were there already


@dataclass(frozen=True)
class SetRun:
    """Models measured beside a variant, in a worker of their own (the single-task set; the model
    without a head)."""

    tasks: tuple[str, ...]
    status: str  # "ok" | "error"
    reason: str | None = None
    file: FileInfo | None = None
    measured: Measured | None = None


@dataclass(frozen=True)
class Goal:
    latency_ratio_max: float
    goal: float
    met: bool


@dataclass(frozen=True)
class SingleTaskRatio:
    batch: int
    source_size: Size
    one_pass_ms: float
    single_task_sum_ms: float
    single_task_ms: dict[str, float]  # task -> its model's median, in the model's task order
    latency_ratio: float | None
    end_to_end_ratio: float | None
    memory_ratio: float | None


@dataclass(frozen=True)
class SingleTaskComparison:
    batches: tuple[SingleTaskRatio, ...]
    parameters_ratio: float | None
    flops_ratio: float | None
    file_bytes_ratio: float | None
    goal: Goal | None = None


@dataclass(frozen=True)
class HeadCostBatch:
    batch: int
    source_size: Size
    with_ms: float  # median model time with every head
    without_ms: float  # ... and without this one
    with_end_to_end_ms_per_image: float
    without_end_to_end_ms_per_image: float


@dataclass(frozen=True)
class HeadCost:
    """A head's cost: the variant against the same model without that task, in the same run."""

    run: SetRun  # the model without the task (run.tasks: the task left out)
    flops_with: int
    flops_without: int
    parameters_with: int
    parameters_without: int
    batches: tuple[HeadCostBatch, ...] = ()


@dataclass(frozen=True)
class VariantResult:
    format: str
    precision: str
    label: str
    input_size: Size
    status: str  # "ok" | "skipped" | "error"
    reason: str | None = None
    file: FileInfo | None = None
    measured: Measured | None = None
    single_task: SetRun | None = None
    vs_single_task: SingleTaskComparison | None = None
    head_costs: tuple[HeadCost, ...] = ()


@dataclass(frozen=True)
class ModelBenchDocument:
    """`onepass bench MODEL`'s result."""

    kind: ClassVar[str] = "model"
    command: str
    date: str
    device: str
    machine: MachineRecord
    versions: dict[str, str | None]
    source: SourceRevision | None
    settings: BenchSettings
    model: ModelInfo
    metric_directions: dict[str, dict[str, bool]]  # task -> metric -> higher is better
    roofline: dict[str, MatmulPeak]  # dtype -> peak
    sizes: tuple[SizeRecord, ...]
    variants: tuple[VariantResult, ...]
    elapsed_s: float | None = None

    def size(self, input_size: Size) -> SizeRecord | None:
        for record in self.sizes:
            if tuple(record.input_size) == tuple(input_size):
                return record
        return None


# ---- onepass bench serve ---------------------------------------------------------------------
@dataclass(frozen=True)
class ServeLoadSettings:
    """Everything `onepass bench serve` was asked for."""

    url: str | None = None  # a running server; None: the bench starts `onepass serve MODEL` itself
    model: str | None = None  # the model served: the in-process reference, the started server, the baseline
    baseline: bool = False  # also load the baseline server (bench/baseline_server.py) on MODEL's model.onnx
    without_bentoml: bool = False  # also load onepass's own app under plain uvicorn (bench/app_server.py)
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    maps: tuple[bool, ...] = (True,)  # each level runs once per value of the `maps` form field
    duration: float | None = 10.0  # seconds per level (None: use `requests`)
    requests: int | None = None  # requests per level
    warmup: int = 16  # requests per level before measuring, sent at that level's concurrency
    image: str | None = None  # file to upload; default: a rendered synthetic frame ...
    source_size: Size = (480, 640)  # ... of this size
    upload: str = "png"  # ... in this file format (png | jpeg)
    fields: tuple[tuple[str, str], ...] = ()  # extra form fields sent with every request
    timeout: float = 60.0
    backend: str = "auto"  # of the in-process reference and of the server the bench starts
    precision: str = "fp32"  # ... the same
    compile: bool = False  # ... the same (torch.compile for the torch backend)
    workers: int = 1  # of the server the bench starts
    in_process_batches: tuple[int, ...] = (1, 2, 4, 8, 16)
    in_process_seconds: float = 1.0


@dataclass(frozen=True)
class BatchSizes:
    """The batches a server formed during a level, from its /metrics histogram."""

    batches: int
    mean: float | None
    max_at_most: str | None  # the largest batch is at most this bucket bound
    histogram: dict[str, int]  # bucket bound -> batches


@dataclass(frozen=True)
class LoadLevel:
    concurrency: int
    maps: bool  # the `maps` form field sent (version 1 sent none: the server's default, maps on)
    requests: int
    ok: int
    errors: dict[str, int]  # HTTP status or exception name -> count
    elapsed_s: float
    requests_per_s: float | None
    latency_ms: LatencyStats  # of the successful requests
    batch_sizes: BatchSizes | None = None


@dataclass(frozen=True)
class ServerRun:
    name: str  # "onepass serve" | "baseline"
    url: str
    started: bool  # by the bench (on a free loopback port), or given with --url
    levels: tuple[LoadLevel, ...]
    command: str | None = None  # how the bench started it


@dataclass(frozen=True)
class BaselineRatio:
    """`onepass serve` against the baseline server at one level (the same load, one after the other);
    also any first server against a second (`onepass_*`: the first, `baseline_*`: the second)."""

    concurrency: int
    maps: bool
    onepass_requests_per_s: float | None
    baseline_requests_per_s: float | None
    throughput_ratio: float | None  # onepass / baseline: above 1, onepass serves more
    onepass_p50_ms: float | None
    baseline_p50_ms: float | None
    latency_ratio: float | None  # onepass / baseline: below 1, onepass answers sooner


@dataclass(frozen=True)
class InProcessBatch:
    batch: int
    latency_ms: LatencyStats  # decode + predict of the batch
    images_per_s: float | None
    phases: dict[str, LatencyStats]  # decode, preprocess, model, postprocess (per batch)


@dataclass(frozen=True)
class InProcessReference:
    model: str
    backend_choice: str
    batches: tuple[InProcessBatch, ...]

    def best(self) -> InProcessBatch | None:
        """The batch size with the highest images/s."""
        measured = [b for b in self.batches if b.images_per_s]
        return max(measured, key=lambda b: b.images_per_s) if measured else None


@dataclass(frozen=True)
class ServeBenchDocument:
    """`onepass bench serve`'s result."""

    kind: ClassVar[str] = "serve"
    command: str
    date: str
    machine: MachineRecord
    versions: dict[str, str | None]
    source: SourceRevision | None
    settings: ServeLoadSettings
    payload_bytes: int
    servers: tuple[ServerRun, ...]
    in_process: InProcessReference | None = None
    vs_baseline: tuple[BaselineRatio, ...] = ()
    vs_app: tuple[BaselineRatio, ...] = ()  # onepass serve against its app without BentoML (--without-bentoml)
    app_vs_baseline: tuple[BaselineRatio, ...] = ()  # that app against the baseline (both options)

    def server(self, name: str) -> ServerRun | None:
        for run in self.servers:
            if run.name == name:
                return run
        return None


# ---- `onepass predict` end to end (benchmarks/predict_throughput.py, video_throughput.py) --------
@dataclass(frozen=True)
class StageCost:
    """One stage of `onepass predict`'s pipeline timed on its own (benchmarks/stage_split.py), per image."""

    stage: str
    wall_ms: float
    cpu_ms: float  # this process's CPU time: above wall_ms where the stage runs on several threads


@dataclass(frozen=True)
class PipelineBenchDocument:
    """`onepass predict` on files or a video, end to end, against the Predictor alone on the same
    images already decoded in memory; and where its time goes, stage by stage."""

    kind: ClassVar[str] = "pipeline"
    command: str
    date: str
    machine: MachineRecord
    versions: dict[str, str | None]
    source: SourceRevision | None
    inputs: str  # "images" (files) or "video" (one H.264 file)
    model: str
    size: tuple[int, int]  # the images' or frames' (H, W)
    items: int  # images or frames in the full run
    batch_size: int
    backend: str
    tasks: tuple[str, ...] | None  # None: every task of the model
    predictor_per_s: float  # the Predictor alone, on decoded images
    steady_per_s: float  # onepass predict, start-up cancelled (the full run minus a quarter run)
    with_startup_per_s: float  # onepass predict's full run, start-up included
    target: float  # the ratio steady / Predictor the issue asks for
    stages: tuple[StageCost, ...]

    @property
    def ratio(self) -> float:
        return self.steady_per_s / self.predictor_per_s


Document = ModelBenchDocument | ServeBenchDocument | PipelineBenchDocument
