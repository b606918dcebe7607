"""`onepass bench serve --url URL`: a closed-loop HTTP load generator (httpx, asyncio) against a
running `onepass serve`.

For each concurrency level, C clients each send `POST /predict` (multipart field `image`) back to back
for a duration (or until N requests are done), after a warm-up at that level (connections, and the
first passes at new batch sizes, are not measured). Reported per level: requests/s, latency
percentiles of the successful requests, errors by status or exception, and the adaptive batch
sizes the server formed, read from the `onepass_adaptive_batch_size` histogram in /metrics before
and after the level.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import io
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onepass.bench.machine import describe_machine, source_revision, versions
from onepass.bench.plan import BenchError
from onepass.bench.stats import summarize
from onepass.serve.batching import BATCH_SIZE_METRIC  # the histogram the server exports

IN_PROCESS_BATCH = 8


@dataclass(frozen=True)
class ServeSettings:
    url: str
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    duration: float | None = 10.0  # seconds per level (None: use `requests`)
    requests: int | None = None  # requests per level
    warmup: int = 16  # requests per level before measuring, sent at that level's concurrency
    image: str | None = None  # file to upload; default: a rendered synthetic frame
    source_size: tuple[int, int] = (480, 640)
    fields: tuple[tuple[str, str], ...] = ()  # extra form fields sent with every request
    timeout: float = 60.0
    model: str | None = None  # measure this package in-process too, for the comparison
    backend: str = "auto"
    in_process_seconds: float = 3.0
    command: str = ""


def request_payload(settings: ServeSettings) -> tuple[bytes, str, str]:
    """(bytes, file name, content type) of the image every request uploads."""
    if settings.image:
        path = Path(settings.image)
        if not path.is_file():
            raise BenchError(f"--image {path}: no such file")
        return path.read_bytes(), path.name, "application/octet-stream"
    from PIL import Image

    from onepass.data.synth import render_scene

    image = render_scene(np.random.default_rng(20261126), *settings.source_size).image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue(), "frame.png", "image/png"


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


def batch_size_delta(before: dict | None, after: dict | None) -> dict[str, Any] | None:
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
    return {
        "batches": int(round(count)),
        "mean": (after["sum"] - before["sum"]) / count if count > 0 else None,
        "max_at_most": largest,
        "histogram": histogram,
    }


async def _scrape(client, url: str) -> dict | None:
    import httpx

    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return None
    return parse_batch_histogram(response.text) if response.status_code == 200 else None


async def _load(client, url: str, payload, fields, concurrency: int, duration, requests) -> dict[str, Any]:
    import httpx

    content, name, content_type = payload
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
        while more():
            start = time.perf_counter()
            try:
                response = await client.post(url, files={"image": (name, content, content_type)}, data=dict(fields))
            except httpx.HTTPError as error:
                errors[type(error).__name__] += 1
                continue
            if 200 <= response.status_code < 300:
                latencies.append(time.perf_counter() - start)
            else:
                errors[str(response.status_code)] += 1

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {"latencies": latencies, "errors": dict(errors), "elapsed_s": elapsed}


async def _run_levels(settings: ServeSettings, payload, log: Callable[[str], None]) -> list[dict[str, Any]]:
    import httpx

    base = settings.url.rstrip("/")
    predict_url, metrics_url = f"{base}/predict", f"{base}/metrics"
    levels = []
    limits = httpx.Limits(
        max_connections=max(settings.concurrency), max_keepalive_connections=max(settings.concurrency)
    )
    async with httpx.AsyncClient(timeout=settings.timeout, limits=limits) as client:
        try:
            await client.get(f"{base}/readyz")
        except httpx.HTTPError as error:
            raise BenchError(
                f"--url {settings.url}: cannot reach the server ({type(error).__name__}: {error})"
            ) from None
        for concurrency in settings.concurrency:
            log(f"bench serve: concurrency {concurrency}: {settings.warmup} warm-up requests, then measuring")
            if settings.warmup:
                await _load(client, predict_url, payload, settings.fields, concurrency, None, settings.warmup)
            before = await _scrape(client, metrics_url)
            load = await _load(
                client, predict_url, payload, settings.fields, concurrency, settings.duration, settings.requests
            )
            after = await _scrape(client, metrics_url)
            ok = len(load["latencies"])
            levels.append(
                {
                    "concurrency": concurrency,
                    "requests": ok + sum(load["errors"].values()),
                    "ok": ok,
                    "errors": load["errors"],
                    "elapsed_s": load["elapsed_s"],
                    "requests_per_s": ok / load["elapsed_s"] if load["elapsed_s"] > 0 else None,
                    "latency_ms": summarize(load["latencies"]),
                    "batch_sizes": batch_size_delta(before, after),
                }
            )
    return levels


def in_process(settings: ServeSettings, payload: bytes, log: Callable[[str], None]) -> dict[str, Any]:
    """The same model and image measured in this process: decode + `predict` per request, at batch 1
    and at batch IN_PROCESS_BATCH, for the 'what does HTTP cost' comparison."""
    from PIL import Image

    import onepass
    from onepass.data.image import decode_image

    predictor = onepass.load(settings.model, backend=settings.backend)
    log(f"bench serve: in-process reference: {predictor.backend_choice}")

    def decode() -> Image.Image:  # as the server decodes an upload
        return decode_image(payload, source="--image")

    found: dict[str, Any] = {"model": settings.model, "backend_choice": predictor.backend_choice, "batches": []}
    for batch in (1, IN_PROCESS_BATCH):
        predictor.predict([decode() for _ in range(batch)])  # warm-up
        samples, began = [], time.perf_counter()
        while len(samples) < 5 or time.perf_counter() - began < settings.in_process_seconds:
            start = time.perf_counter()
            predictor.predict([decode() for _ in range(batch)])
            samples.append(time.perf_counter() - start)
        stats = summarize(samples)
        found["batches"].append({"batch": batch, "latency_ms": stats, "images_per_s": batch / (stats["mean"] / 1e3)})
    return found


def run_serve_bench(settings: ServeSettings, log: Callable[[str], None]) -> dict[str, Any]:
    payload = request_payload(settings)
    document: dict[str, Any] = {
        "format": "onepass-bench",
        "version": 1,
        "kind": "serve",
        "command": settings.command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "url": settings.url,
        "machine": describe_machine("cpu"),
        "versions": versions(),
        "source": source_revision(),
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "command"},
        "payload_bytes": len(payload[0]),
    }
    if settings.model:
        document["in_process"] = in_process(settings, payload[0], log)
    document["levels"] = asyncio.run(_run_levels(settings, payload, log))
    return document
