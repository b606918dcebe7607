"""The BentoML service behind `onepass serve`.

    bentoml serve onepass.serve.service:Onepass --arg model=DIR   (what `onepass serve DIR` runs)

One service, one process per worker. Each worker loads the package with `onepass.load` once, warms
it up before it reports ready, and puts it on the state of the Starlette app that the service mounts
(serve/http_api.py: /predict, /visualize, the web page, KServe v2). Request threads decode, resize
and encode; their forward passes go through serve/batching.py, which runs the images of concurrent
requests as one batch in a model thread. BentoML provides the HTTP server, workers, /livez, /readyz
and /metrics.

A worker whose start-up fails (the model does not load, a warm-up pass fails) stops the whole
server rather than being restarted by BentoML forever: see `stop_the_server` and serve/launch.py.

Settings come from BentoML arguments (`--arg key=value`; see serve/settings.py).
"""

from __future__ import annotations

import logging
import os
import signal
import time

import bentoml
import numpy as np

import onepass
from onepass.errors import ConfigError
from onepass.models.package import PackageError
from onepass.runtime.backend import runs_frames
from onepass.runtime.memory import keep_freed_memory
from onepass.runtime.predictor import Predictor, resolve_device
from onepass.serve.batching import BATCH_SIZE_METRIC, BatchingBackend
from onepass.serve.http_api import build_app
from onepass.serve.launch import STARTUP_FAILURE_ENV
from onepass.serve.settings import ServeSettings, resolve_model
from onepass.serve.state import Runtime, set_runtime

logger = logging.getLogger("onepass.serve")

SETTINGS = ServeSettings.from_arguments(vars(bentoml.use_arguments()))
MODEL_PATH = resolve_model(SETTINGS.model)  # fails here, before any worker starts, for a bad MODEL
WARMUP_RUNS = 3
WARMUP_FRAME = (480, 640)  # (H, W): the frame-size graph's warm-up frame, a common camera size
STARTUP_FAILURE_EXIT = 3  # a worker's exit status when it cannot start (uvicorn's own for a failed start-up)
APP = build_app(SETTINGS.max_upload_bytes)  # one per worker process, as the service instance; it gets its runtime there


def batch_size_histogram(max_batch_size: int):
    """The /metrics histogram of batch sizes. prometheus_client is imported here, in the worker, once
    BentoML has set up its multiprocess collection (an import at module level would be too early)."""
    import prometheus_client

    buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch_size} & set(range(1, max_batch_size + 1)))
    return prometheus_client.Histogram(
        BATCH_SIZE_METRIC, "Images per forward pass (adaptive batching)", buckets=[*buckets, float("inf")]
    )


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


@bentoml.asgi_app(APP, path="/")
@bentoml.service(name="onepass", workers=SETTINGS.workers, traffic={"timeout": 120})
class Onepass:
    """The public HTTP API (serve/http_api.py) over one batched model per worker."""

    def __init__(self) -> None:
        try:
            self._start()
        except Exception as error:
            stop_the_server(error)  # in a BentoML worker this does not return
            raise

    def _start(self) -> None:
        start = time.perf_counter()
        keep_freed_memory()
        predictor = onepass.load(
            MODEL_PATH, backend=SETTINGS.backend, device=SETTINGS.device, precision=SETTINGS.precision
        )
        queued = throughput_backend(predictor)
        height, width = predictor.config.input_size
        # Warm up before readiness: the first passes pay for allocation, kernel selection, compilation.
        for backend in [predictor.backend, queued] if queued else [predictor.backend]:
            for batch in (1, min(SETTINGS.max_batch_size, 8)) + (1,) * (WARMUP_RUNS - 2):
                backend.run(np.zeros((batch, height, width, 3), np.uint8))
            if runs_frames(backend):  # the frame-size graph (onnxruntime loads it here), at a camera's size
                backend.run_frames(np.zeros((1, *WARMUP_FRAME, 3), np.uint8))
        histogram = batch_size_histogram(SETTINGS.max_batch_size)
        self.batching = BatchingBackend(
            predictor.backend,
            SETTINGS.max_batch_size,
            SETTINGS.max_latency_ms,
            on_batch=histogram.observe,
            queued_backend=queued,
        )
        backend_info = {
            "name": predictor.backend.name,
            "device": resolve_device(SETTINGS.device),
            "precision": SETTINGS.precision,
            "choice": predictor.backend_choice,  # with backend "auto": what it measured, and what it kept
        }
        set_runtime(APP, Runtime(Predictor(predictor.package, self.batching), SETTINGS, backend_info))
        logger.info(
            "model %s %s loaded on backend %s (%s) and warmed up in %.1f s",
            predictor.package.name,
            predictor.package.version,
            predictor.backend_choice,
            SETTINGS.precision,
            time.perf_counter() - start,
        )

    @bentoml.on_shutdown
    def _stop_batching(self) -> None:
        self.batching.close()


def stop_the_server(error: Exception) -> None:
    """A worker that cannot start stops the server, instead of being restarted forever.

    BentoML's supervisor (circus) restarts a worker that exits, whatever its status: a model that
    cannot load meant a traceback every ~10 s and a /readyz that never answered. So the worker logs
    the reason in one line, leaves it for `onepass serve` to print (serve/launch.py), asks its
    parent, BentoML's arbiter, to shut the server down (SIGTERM: what Ctrl-C or a service manager
    does), and exits. Outside a BentoML worker process (no worker index) it returns, and the caller
    raises the error as usual.
    """
    if bentoml.server_context.worker_index is None:
        return
    expected = isinstance(error, ConfigError | PackageError | ImportError)  # what onepass.load refuses with
    message = " ".join(str(error).split())  # one line
    reason = message if expected and message else f"{type(error).__name__}: {message}"
    logger.error("the server stops: a worker could not start: %s", reason, exc_info=not expected)
    failure_file = os.environ.get(STARTUP_FAILURE_ENV)
    if failure_file:
        with open(failure_file, "a", encoding="utf-8") as out:
            out.write(reason + "\n")
    os.kill(os.getppid(), signal.SIGTERM)
    logging.shutdown()  # flush the log: os._exit does not
    os._exit(STARTUP_FAILURE_EXIT)  # at once: no ASGI start-up failure, with its tracebacks, to unwind
