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
The start-up itself (load, warm-up, batcher) is serve/model_runtime.py, shared with a plain-uvicorn
run of the same app (bench/app_server.py).

Settings come from BentoML arguments (`--arg key=value`; see serve/settings.py).
"""

from __future__ import annotations

import logging
import os
import signal

import bentoml

from onepass.errors import ConfigError
from onepass.models.package import PackageError
from onepass.serve.batching import BATCH_SIZE_METRIC
from onepass.serve.http_api import build_app
from onepass.serve.launch import STARTUP_FAILURE_ENV
from onepass.serve.model_runtime import start_runtime
from onepass.serve.settings import ServeSettings, resolve_model
from onepass.serve.state import set_runtime

logger = logging.getLogger("onepass.serve")

SETTINGS = ServeSettings.from_arguments(vars(bentoml.use_arguments()))
MODEL_PATH = resolve_model(SETTINGS.model)  # fails here, before any worker starts, for a bad MODEL
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
        histogram = batch_size_histogram(SETTINGS.max_batch_size)
        runtime, self.batching, seconds = start_runtime(SETTINGS, MODEL_PATH, on_batch=histogram.observe)
        set_runtime(APP, runtime)
        logger.info(
            "model %s %s loaded on backend %s (%s) and warmed up in %.1f s",
            runtime.name,
            runtime.version,
            runtime.backend_info["choice"],
            SETTINGS.precision,
            seconds,
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
