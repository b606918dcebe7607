"""The tables of `onepass bench serve`, from its `ServeBenchDocument`: each server's load levels
(against the in-process reference where there is one), onepass serve against the baseline server,
and the in-process reference itself."""

from __future__ import annotations

from dataclasses import dataclass

from onepass.bench.records import BaselineRatio, BatchSizes, ServeBenchDocument, ServerRun
from onepass.bench.tables import DASH, Table, ms, number, signed_ms, times
from onepass.bench.timing import PREDICT_PHASES, LatencyStats

IN_PROCESS_PHASES = ("decode", *PREDICT_PHASES)


@dataclass(frozen=True)
class LoadRow:
    concurrency: int
    maps: bool
    requests: int
    errors: dict[str, int]
    requests_per_s: float | None
    latency_ms: LatencyStats
    batch_sizes: BatchSizes | None
    added_p50_ms: float | None = None  # p50 above the in-process batch-1 p50
    of_in_process_best: float | None = None  # requests/s over the in-process best images/s

    COLUMNS = (
        "concurrency", "maps", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "server batch size",
        "p50 ms over in-process", "req/s of in-process best",
    )  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        batches = self.batch_sizes
        if batches is None:
            batch_text = "not in /metrics"
        elif not batches.batches:
            batch_text = "no batches"
        else:
            batch_text = f"mean {batches.mean:.2f}, max ≤ {batches.max_at_most} ({batches.batches} batches)"
        return (
            str(self.concurrency),
            "on" if self.maps else "off",
            str(self.requests),
            ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "0",
            number(self.requests_per_s),
            ms(self.latency_ms.p50),
            ms(self.latency_ms.p90),
            ms(self.latency_ms.p99),
            batch_text,
            signed_ms(self.added_p50_ms),
            times(self.of_in_process_best),
        )


def load_table(document: ServeBenchDocument, server: ServerRun) -> Table:
    reference = document.in_process
    batch_one = next((b for b in reference.batches if b.batch == 1), None) if reference else None
    best = reference.best() if reference else None
    rows = []
    for level in server.levels:
        added = None
        if batch_one is not None and level.latency_ms.p50 is not None:
            added = level.latency_ms.p50 - batch_one.latency_ms.p50
        share = None
        if best is not None and level.requests_per_s is not None:
            share = level.requests_per_s / best.images_per_s
        rows.append(
            LoadRow(
                level.concurrency,
                level.maps,
                level.requests,
                level.errors,
                level.requests_per_s,
                level.latency_ms,
                level.batch_sizes,
                added,
                share,
            )  # fmt: skip
        )
    settings = document.settings
    per_level = f"{settings.duration} s" if settings.duration else f"{settings.requests} requests"
    started = f" (started by the bench: {server.command})" if server.started else ""
    note = (
        f"POST {server.url}/predict{started} with a {document.payload_bytes / 1e3:.0f} kB image, closed loop over "
        f"keep-alive connections: each of C clients sends its next request when the last returns; {per_level} per "
        f"level after {settings.warmup} warm-up requests. Latency of successful requests; batch sizes from the "
        "server's adaptive batching histogram in /metrics."
    )
    if best is not None:
        note += (
            " In-process columns: p50 above decode + predict of one image in the bench's own process, and req/s "
            f"over its best images/s (batch {best.batch})."
        )
    return Table(f"HTTP load: {server.name} at {server.url}", LoadRow.COLUMNS, tuple(rows), note)


@dataclass(frozen=True)
class PairRow:
    """One load level served by two servers, one after the other (a BaselineRatio: the first server
    against the second)."""

    pair: BaselineRatio

    @staticmethod
    def columns(first: str, second: str) -> tuple[str, ...]:
        return (
            "concurrency", "maps", f"{first} req/s", f"{second} req/s", "req/s ratio", f"{first} p50 ms",
            f"{second} p50 ms", "p50 ratio",
        )  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        r = self.pair
        return (
            str(r.concurrency),
            "on" if r.maps else "off",
            number(r.onepass_requests_per_s),
            number(r.baseline_requests_per_s),
            times(r.throughput_ratio),
            ms(r.onepass_p50_ms),
            ms(r.baseline_p50_ms),
            times(r.latency_ratio),
        )


BASELINE_NOTE = (
    "The baseline: Starlette, uvicorn and one onnxruntime session on the same model.onnx, decoding with Pillow, no "
    "batching, no BentoML (bench/baseline_server.py); it answers the small outputs only, whatever `maps` says, so "
    "maps=off is the like-for-like row."
)
APP_NOTE = (
    "onepass's app without BentoML: the same Starlette app, model start-up and batcher as onepass serve, run by "
    "plain uvicorn in one process (bench/app_server.py)."
)


def pair_table(title: str, first: str, second: str, pairs, note: str) -> Table | None:
    if not pairs:
        return None
    ratios = f" Ratios are {first} / {second}: req/s above 1x and p50 below 1x favour {first}."
    return Table(title, PairRow.columns(first, second), tuple(PairRow(p) for p in pairs), note + ratios)


def baseline_tables(document: ServeBenchDocument) -> list[Table | None]:
    """onepass serve against the baseline; with --without-bentoml, against its own app without BentoML
    (what BentoML's layers cost) and that app against the baseline (what onepass's app costs)."""
    return [
        pair_table("onepass serve against the baseline server", "onepass", "baseline", document.vs_baseline, BASELINE_NOTE),
        pair_table("onepass serve against its app without BentoML", "onepass serve", "app", document.vs_app, APP_NOTE),
        pair_table(
            "onepass's app without BentoML against the baseline server", "app", "baseline",
            document.app_vs_baseline, APP_NOTE + " " + BASELINE_NOTE,
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class InProcessRow:
    batch: int
    latency_ms: LatencyStats
    images_per_s: float | None
    phases: dict[str, LatencyStats]

    COLUMNS = ("batch", "p50 ms", "p90 ms", "img/s", *(f"{phase} p50 ms" for phase in IN_PROCESS_PHASES))

    def cells(self) -> tuple[str, ...]:
        phases = [ms(self.phases[p].p50) if p in self.phases else DASH for p in IN_PROCESS_PHASES]
        return (str(self.batch), ms(self.latency_ms.p50), ms(self.latency_ms.p90), number(self.images_per_s), *phases)


def in_process_table(document: ServeBenchDocument) -> Table | None:
    reference = document.in_process
    if reference is None:
        return None
    rows = tuple(InProcessRow(b.batch, b.latency_ms, b.images_per_s, b.phases) for b in reference.batches)
    note = (
        f"{reference.model} in the bench's own process, before any server ran ({reference.backend_choice}): "
        "decode of the same upload, then the Predictor's preprocess, run and postprocess, per batch."
    )
    return Table("in process: the same image, decode + predict", InProcessRow.COLUMNS, rows, note)


def serve_tables(document: ServeBenchDocument) -> list[Table]:
    tables = [load_table(document, server) for server in document.servers]
    tables += [*baseline_tables(document), in_process_table(document)]
    return [t for t in tables if t is not None]
