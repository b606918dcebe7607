"""A serving process's model: loaded once, warmed up, behind the adaptive batcher, as the `Runtime`
the HTTP app serves. BentoML-free, so that the same start-up runs in a BentoML worker
(serve/service.py) and under plain uvicorn (bench/app_server.py, which measures what BentoML's own
layers cost)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import onepass
from onepass.runtime.backend import runs_frames
from onepass.runtime.memory import keep_freed_memory
from onepass.runtime.predictor import Predictor, resolve_device
from onepass.serve.batching import BatchingBackend
from onepass.serve.settings import ServeSettings
from onepass.serve.state import Runtime

WARMUP_RUNS = 3
WARMUP_FRAME = (480, 640)  # (H, W): the frame-size graph's warm-up frame, a common camera size


def throughput_backend(predictor: Predictor):
    """The backend for batches formed under load, when it should differ from the lone-request one.

    onnxruntime on the CPU: a second session whose threads do not spin. Spinning makes a lone
    request's pass ~2 ms faster (measured at 240x320), but under load the spinning threads take
    the cores from the request threads' decoding and encoding: 16 concurrent clients got ~15 % more
    requests/s without it. Both sessions are loaded from the same file; one runs at a time.
    """
    backend = predictor.backend
    shared = backend.sharing_cores()
    return None if shared is backend else shared


def start_runtime(
    settings: ServeSettings, model: Path | None, on_batch: Callable[[int], None] | None = None
) -> tuple[Runtime, BatchingBackend, float]:
    """Load `model` (None: the shipped one) as `settings` say, warm every backend up (the first passes
    pay for allocation, kernel selection, compilation), and put it behind the batcher.

    -> the Runtime, its batcher (to close at shutdown) and the seconds it all took."""
    start = time.perf_counter()
    keep_freed_memory()
    predictor = onepass.load(
        model, backend=settings.backend, device=settings.device, precision=settings.precision, compile=settings.compile
    )
    queued = throughput_backend(predictor)
    height, width = predictor.config.input_size
    for backend in [predictor.backend, queued] if queued else [predictor.backend]:
        for batch in (1, min(settings.max_batch_size, 8)) + (1,) * (WARMUP_RUNS - 2):
            backend.run(np.zeros((batch, height, width, 3), np.uint8))
        if runs_frames(backend):  # the frame-size graph (onnxruntime loads it here), at a camera's size
            backend.run_frames(np.zeros((1, *WARMUP_FRAME, 3), np.uint8))
    batching = BatchingBackend(
        predictor.backend, settings.max_batch_size, settings.max_latency_ms, on_batch=on_batch, queued_backend=queued
    )
    backend_info = {
        "name": predictor.backend.name,
        "device": resolve_device(settings.device),
        "precision": settings.precision,
        "choice": predictor.backend_choice,  # with backend "auto": what it measured, and what it kept
    }
    return (
        Runtime(Predictor(predictor.package, batching), settings, backend_info),
        batching,
        time.perf_counter() - start,
    )
