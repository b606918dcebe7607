"""`onepass bench serve`: a closed-loop HTTP load generator (httpx, asyncio) against `onepass serve`
(a running one, --url, or one it starts on a free loopback port, --model) and, with --baseline,
against the baseline server (bench/baseline_server.py: Starlette + uvicorn + one onnxruntime session
on the same model.onnx), loaded exactly the same way, one after the other; with --without-bentoml,
also against onepass's own app under plain uvicorn (bench/app_server.py), so that the gap between
onepass serve and the baseline splits into what BentoML's layers cost and what onepass's app costs.

For each concurrency level (and each value of the `maps` form field asked for), C clients each send
`POST /predict` (multipart field `image`) back to back for a duration (or until N requests are
done), after a warm-up at that level (connections, and the first passes at new batch sizes, are
not measured). Reported per level: requests/s, latency percentiles of the successful requests,
errors by status or exception, and the adaptive batch sizes the server formed, read from the
`onepass_adaptive_batch_size` histogram in /metrics before and after the level.

With a model, the same image is first timed in this process too, before any server runs: decode
and the Predictor's three phases, at several batch sizes (what HTTP costs on top of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onepass.bench.machine import describe_machine, source_revision, versions
from onepass.bench.plan import BenchError
from onepass.bench.records import (
    BaselineRatio,
    BatchSizes,
    InProcessBatch,
    InProcessReference,
    LoadLevel,
    ServeBenchDocument,
    ServeLoadSettings,
    ServerRun,
)
from onepass.bench.timing import LatencyStats, predict_phases, ratio, time_calls
from onepass.runtime.cpu import features_text
from onepass.serve.batching import BATCH_SIZE_METRIC  # the histogram the server exports

ONEPASS = "onepass serve"
BASELINE = "baseline"
APP = "onepass app without BentoML"
PAYLOAD_SEED = 20261126
READY_TIMEOUT_S = 300  # BentoML takes tens of seconds to start on 2 cores
STOP_TIMEOUT_S = 60  # and about 30 s to shut down gracefully
UPLOADS = {"png": ("PNG", {}, "image/png"), "jpeg": ("JPEG", {"quality": 90}, "image/jpeg")}

Log = Callable[[str], None]


@dataclass(frozen=True)
class Payload:
    content: bytes
    name: str
    content_type: str


def request_payload(settings: ServeLoadSettings) -> Payload:
    """The image every request uploads: the file given, or a rendered synthetic frame."""
    if settings.image:
        path = Path(settings.image)
        if not path.is_file():
            raise BenchError(f"--image {path}: no such file")
        return Payload(path.read_bytes(), path.name, "application/octet-stream")
    from PIL import Image

    from onepass.data.synth import render_scene

    file_format, options, content_type = UPLOADS[settings.upload]
    image = render_scene(np.random.default_rng(PAYLOAD_SEED), *settings.source_size).image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=file_format, **options)
    return Payload(buffer.getvalue(), f"frame.{settings.upload}", content_type)


def parse_batch_histogram(text: str) -> dict[str, Any] | None:
    """The adaptive batch size histogram in a /metrics page, summed over its label sets:
    {"buckets": {upper bound: cumulative count}, "sum": ..., "count": ...}; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    found = None
    for family in text_string_to_metric_families(text):
        if family.name != BATCH_SIZE_METRIC:
            continue
        found = found or {"name": family.name, "buckets": {}, "sum": 0.0, "count": 0.0}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                found["buckets"][bound] = found["buckets"].get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                found["sum"] += sample.value
            elif sample.name.endswith("_count"):
                found["count"] += sample.value
    return found


def batch_size_delta(before: dict | None, after: dict | None) -> BatchSizes | None:
    """The batches formed between two scrapes: how many, their mean size, and their histogram."""
    if after is None:
        return None
    before = before or {"buckets": {}, "sum": 0.0, "count": 0.0}
    count = after["count"] - before["count"]
    cumulative = sorted((b, after["buckets"][b] - before["buckets"].get(b, 0.0)) for b in after["buckets"])
    histogram, previous, largest = {}, 0.0, None
    for bound, value in cumulative:
        if value - previous > 0:
            largest = "+Inf" if bound == float("inf") else f"{bound:g}"  # the largest batch is at most this bound
            histogram[largest] = int(round(value - previous))
        previous = value
    return BatchSizes(
        batches=int(round(count)),
        mean=(after["sum"] - before["sum"]) / count if count > 0 else None,
        max_at_most=largest,
        histogram=histogram,
    )


# ---- the load -------------------------------------------------------------------------------
async def _scrape(client, url: str) -> dict | None:
    import httpx

    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return None
    return parse_batch_histogram(response.text) if response.status_code == 200 else None


async def _load(client, url: str, payload: Payload, fields: dict, concurrency: int, duration, requests) -> dict:
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    left = [requests]
    deadline = None if duration is None else time.perf_counter() + duration

    def more() -> bool:
        if deadline is not None:
            return time.perf_counter() < deadline
        if left[0] <= 0:
            return False
        left[0] -= 1
        return True

    async def client_loop() -> None:
        files = {"image": (payload.name, payload.content, payload.content_type)}
        while more():
            start = time.perf_counter()
            try:
                response = await client.post(url, files=files, data=fields)
            except httpx.HTTPError as error:
                errors[type(error).__name__] += 1
                continue
            if 200 <= response.status_code < 300:
                latencies.append(time.perf_counter() - start)
            else:
                errors[str(response.status_code)] += 1

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": dict(errors), "elapsed_s": time.perf_counter() - began}


async def _run_levels(settings: ServeLoadSettings, url: str, payload: Payload, log: Log) -> tuple[LoadLevel, ...]:
    import httpx

    base = url.rstrip("/")
    predict_url, metrics_url = f"{base}/predict", f"{base}/metrics"
    levels = []
    most = max(settings.concurrency)
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)  # keep-alive, one per client
    async with httpx.AsyncClient(timeout=settings.timeout, limits=limits) as client:
        try:
            await client.get(f"{base}/readyz")
        except httpx.HTTPError as error:
            raise BenchError(f"--url {url}: cannot reach the server ({type(error).__name__}: {error})") from None
        for concurrency in settings.concurrency:
            for maps in settings.maps:
                fields = {**dict(settings.fields), "maps": "true" if maps else "false"}
                log(f"bench serve: {base}: concurrency {concurrency}, maps={fields['maps']}: measuring")
                if settings.warmup:
                    await _load(client, predict_url, payload, fields, concurrency, None, settings.warmup)
                before = await _scrape(client, metrics_url)
                load = await _load(
                    client, predict_url, payload, fields, concurrency, settings.duration, settings.requests
                )
                after = await _scrape(client, metrics_url)
                ok = len(load["latencies"])
                levels.append(
                    LoadLevel(
                        concurrency=concurrency,
                        maps=maps,
                        requests=ok + sum(load["errors"].values()),
                        ok=ok,
                        errors=load["errors"],
                        elapsed_s=load["elapsed_s"],
                        requests_per_s=ok / load["elapsed_s"] if load["elapsed_s"] > 0 else None,
                        latency_ms=LatencyStats.of_seconds(load["latencies"]),
                        batch_sizes=batch_size_delta(before, after),
                    )
                )
    return tuple(levels)


# ---- in process -----------------------------------------------------------------------------
def in_process(settings: ServeLoadSettings, payload: Payload, log: Log) -> InProcessReference:
    """The same model and image in this process: decode + the Predictor's three phases, each timed,
    at each batch size of `in_process_batches` (the best of them is the throughput reference)."""
    from PIL import Image

    import onepass
    from onepass.data.image import decode_image

    predictor = onepass.load(
        settings.model, backend=settings.backend, precision=settings.precision, compile=settings.compile
    )
    log(f"bench serve: in-process reference: {predictor.backend_choice}")

    def decode() -> Image.Image:  # as the server decodes an upload
        return decode_image(payload.content, source="--image")

    batches = []
    for batch in settings.in_process_batches:

        def call(batch: int = batch) -> dict[str, float]:
            t0 = time.perf_counter()
            images = [decode() for _ in range(batch)]
            return {"decode": time.perf_counter() - t0, **predict_phases(predictor, images)}

        timing = time_calls(call, warmup=1, runs=5, seconds=settings.in_process_seconds, items=batch)
        batches.append(InProcessBatch(batch, timing.latency, timing.throughput_per_s, timing.phases))
    return InProcessReference(settings.model, predictor.backend_choice, tuple(batches))


# ---- servers the bench starts ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def onepass_serve_command(settings: ServeLoadSettings, port: int) -> list[str]:
    command = [sys.executable, "-m", "onepass", "serve", settings.model, "--host", "127.0.0.1", "--port", str(port)]
    return command + [*load_options(settings), "--workers", str(settings.workers)]


def load_options(settings: ServeLoadSettings) -> list[str]:
    """How the servers the bench starts load the model: as the in-process reference does."""
    options = ["--backend", settings.backend, "--precision", settings.precision]
    return options + ["--compile"] * settings.compile


def baseline_command(settings: ServeLoadSettings, port: int) -> list[str]:
    from onepass.export.onnx import ONNX_FILES
    from onepass.models.package import open_package

    onnx = open_package(settings.model).path / ONNX_FILES["fp32"]
    if not onnx.is_file():
        raise BenchError(
            f"--baseline: {onnx} is missing; the baseline serves the fp32 ONNX export "
            f"(make it with: onepass export {settings.model})"
        )
    return [
        sys.executable,
        "-m",
        "onepass.bench.baseline_server",
        str(onnx),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def app_command(settings: ServeLoadSettings, port: int) -> list[str]:
    """onepass's app and model start-up under plain uvicorn (bench/app_server.py)."""
    command = [sys.executable, "-m", "onepass.bench.app_server", str(settings.model), "--host", "127.0.0.1"]
    return command + ["--port", str(port), *load_options(settings)]


@contextlib.contextmanager
def started_server(command: list[str], url: str, name: str, log: Log) -> Iterator[None]:
    """Run `command` (a server on `url`) in a process group of its own until the block ends: ready
    when /readyz answers 200; stopped with SIGTERM, then SIGKILL if it lingers."""
    import httpx

    with tempfile.TemporaryFile() as output:
        log(f"bench serve: starting {name} on {url}")
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    output.seek(0)
                    tail = output.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                    raise BenchError(f"{name} exited with status {process.returncode} before it was ready: {tail[0]}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} was not ready within {READY_TIMEOUT_S} s ({' '.join(command)})")
                time.sleep(0.3)
            yield
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _load_server(settings, name: str, payload: Payload, log: Log, command_for=None) -> ServerRun:
    """Load one server: the given --url, or one started by `command_for(port)` for the duration."""
    if command_for is None:
        return ServerRun(name, settings.url, False, asyncio.run(_run_levels(settings, settings.url, payload, log)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = command_for(port)
    with started_server(command, url, name, log):
        levels = asyncio.run(_run_levels(settings, url, payload, log))
    shown = ["python" if i == 0 else word for i, word in enumerate(command)]  # not this machine's venv path
    return ServerRun(name, url, True, levels, " ".join(shown))


def vs_baseline(onepass_run: ServerRun, baseline: ServerRun) -> tuple[BaselineRatio, ...]:
    theirs = {(level.concurrency, level.maps): level for level in baseline.levels}
    pairs = [(level, theirs[key]) for level in onepass_run.levels if (key := (level.concurrency, level.maps)) in theirs]
    return tuple(
        BaselineRatio(
            concurrency=level.concurrency,
            maps=level.maps,
            onepass_requests_per_s=level.requests_per_s,
            baseline_requests_per_s=other.requests_per_s,
            throughput_ratio=ratio(level.requests_per_s, other.requests_per_s),
            onepass_p50_ms=level.latency_ms.p50,
            baseline_p50_ms=other.latency_ms.p50,
            latency_ratio=ratio(level.latency_ms.p50, other.latency_ms.p50),
        )
        for level, other in pairs
    )


def run_serve_bench(settings: ServeLoadSettings, command: str = "", log: Log = print) -> ServeBenchDocument:
    if settings.url is None and settings.model is None:
        raise BenchError("onepass bench serve needs --url URL (a running server) or --model MODEL (to start one)")
    if settings.baseline and settings.model is None:
        raise BenchError("--baseline needs --model MODEL: the baseline serves that model's model.onnx")
    if settings.without_bentoml and settings.model is None:
        raise BenchError("--without-bentoml needs --model MODEL: the app without BentoML serves that model")
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    machine = describe_machine("cpu")  # the load average when the run started
    log(f"bench serve: CPU features: {features_text(machine.cpu_flags)}")
    payload = request_payload(settings)
    if settings.baseline:
        baseline_command(settings, 0)  # a missing model.onnx fails now, before anything is measured
    reference = in_process(settings, payload, log) if settings.model else None
    servers = [
        _load_server(
            settings, ONEPASS, payload, log, None if settings.url else lambda p: onepass_serve_command(settings, p)
        )
    ]
    if settings.without_bentoml:
        servers.append(_load_server(settings, APP, payload, log, lambda p: app_command(settings, p)))
    if settings.baseline:
        servers.append(_load_server(settings, BASELINE, payload, log, lambda p: baseline_command(settings, p)))
    by_name = {server.name: server for server in servers}
    return ServeBenchDocument(
        command=command,
        date=date,
        machine=machine,
        versions=versions(),
        source=source_revision(),
        settings=settings,
        payload_bytes=len(payload.content),
        servers=tuple(servers),
        in_process=reference,
        vs_baseline=vs_baseline(servers[0], by_name[BASELINE]) if settings.baseline else (),
        vs_app=vs_baseline(servers[0], by_name[APP]) if settings.without_bentoml else (),
        app_vs_baseline=vs_baseline(by_name[APP], by_name[BASELINE]) if APP in by_name and BASELINE in by_name else (),
    )
