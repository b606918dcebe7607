"""What HTTP serving costs: `python benchmarks/serve_latency.py [--url URL] [--model MODEL]`.

The serve issue's measurement, for one model and one image:

1. In process (no server running yet): `predictor.predict(image)` latency at batch 1 (p50/p99), and
   images/s of `predictor.predict` at batch 1, 2, 4, 8, 16 — the best of these is the reference.
2. Over HTTP (starts `onepass serve MODEL` on a free loopback port unless --url is given): warm up
   (connections, and the first passes at each batch size), then `POST /predict`
   one request at a time (p50/p99, with maps and with `maps=false`), then 16 concurrent clients
   (requests/s, and the batch sizes the server formed, from /metrics).

Goals (issue 4): HTTP adds <= 10 ms to the in-process latency at concurrency 1; throughput at
concurrency 16 >= 0.9x the in-process best-batch throughput. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image

import onepass
from onepass.bench.serve_load import batch_size_delta, parse_batch_histogram
from onepass.data.image import decode_image
from onepass.data.synth import render_scene


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1e3
    return f"p50 {np.percentile(ms, 50):7.2f} ms   p99 {np.percentile(ms, 99):7.2f} ms   (n={len(ms)})"


def in_process(model: str, backend: str, image: Image.Image, requests: int) -> tuple[list[float], dict[int, float]]:
    predictor = onepass.load(model, backend=backend)
    for _ in range(5):
        predictor.predict(image)
    latencies = []
    for _ in range(requests):
        start = time.perf_counter()
        predictor.predict(image)
        latencies.append(time.perf_counter() - start)
    throughput = {}
    for batch in (1, 2, 4, 8, 16):
        images = [image] * batch
        predictor.predict(images)
        rounds = max(3, 64 // batch)
        start = time.perf_counter()
        for _ in range(rounds):
            predictor.predict(images)
        throughput[batch] = rounds * batch / (time.perf_counter() - start)
    return latencies, throughput


def start_server(model: str, backend: str, workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "onepass", "serve", model, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend", backend, "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"onepass serve exited with status {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit("onepass serve was not ready within 300 s")


def post(client: httpx.Client, data: bytes, maps: bool) -> float:
    start = time.perf_counter()
    response = client.post("/predict", files={"image": ("scene", data)}, data={"maps": str(maps).lower()})
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def batch_sizes(url: str) -> dict | None:
    """The server's adaptive batch size histogram, as `onepass bench serve` reads it."""
    return parse_batch_histogram(httpx.get(url + "/metrics").text)


def describe_batches(before: dict | None, after: dict | None) -> str:
    delta = batch_size_delta(before, after)
    if not delta or not delta["batches"]:
        return "no batches recorded"
    sizes = ", ".join(f"<={bound}: {count}" for bound, count in delta["histogram"].items())
    return f"{delta['batches']} forward passes, by batch size {sizes}"


def concurrent(url: str, data: bytes, clients: int, requests: int) -> tuple[float, list[float]]:
    local = threading.local()

    def one(_: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
        return post(local.client, data, maps=True)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients * 2)))  # warm-up at this concurrency
        start = time.perf_counter()
        latencies = list(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - start
    return requests / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running `onepass serve` of the same model (default: start one)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--size", default="240x320", help="HxW of the test image")
    parser.add_argument("--workers", type=int, default=1, help="server processes (onepass serve --workers)")
    parser.add_argument("--upload", choices=("png", "jpeg"), default="png", help="file format of the upload")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    image = Image.fromarray(render_scene(np.random.default_rng(5), height, width).image)
    buffer = io.BytesIO()
    image.save(buffer, format=args.upload.upper(), **({"quality": 90} if args.upload == "jpeg" else {}))
    data = buffer.getvalue()

    decoded = decode_image(data, source="the test image")  # as the server decodes an upload
    latencies, throughput = in_process(args.model, args.backend, decoded, args.requests)
    print(
        f"image {width}x{height} {args.upload.upper()} ({len(data) / 1e3:.0f} kB), model {args.model}, backend {args.backend}"
    )
    print(f"in-process predictor.predict, batch 1:     {percentiles(latencies)}")
    best = max(throughput, key=throughput.get)
    print(
        "in-process throughput (images/s by batch):  "
        + ", ".join(f"{b}: {v:.1f}" for b, v in throughput.items())
        + f"  -> best {throughput[best]:.1f} at batch {best}"
    )

    process = None
    url = args.url
    if url is None:
        process, url = start_server(args.model, args.backend, args.workers)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(30):  # warm-up: connections, first passes
                post(client, data, maps=True)
            full = [post(client, data, maps=True) for _ in range(args.requests)]
            lean = [post(client, data, maps=False) for _ in range(args.requests)]
        in_p50 = np.percentile(latencies, 50)
        print(
            f"HTTP /predict, concurrency 1 (with maps):   {percentiles(full)}   "
            f"adds {(np.percentile(full, 50) - in_p50) * 1e3:+.2f} ms at p50"
        )
        print(
            f"HTTP /predict, concurrency 1 (maps=false):  {percentiles(lean)}   "
            f"adds {(np.percentile(lean, 50) - in_p50) * 1e3:+.2f} ms at p50"
        )
        before = batch_sizes(url)
        rate, loaded = concurrent(url, data, args.clients, args.requests)
        after = batch_sizes(url)
        print(
            f"HTTP /predict, concurrency {args.clients}: {rate:.1f} requests/s = {rate / throughput[best]:.2f}x "
            f"the in-process best batch; latency {percentiles(loaded)}"
        )
        print(f"  adaptive batching: {describe_batches(before, after)} (incl. warm-up)")
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
