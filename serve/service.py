"""The BentoML services behind `onepass serve`.

    bentoml serve onepass.serve.service:Onepass --arg model=DIR   (what `onepass serve DIR` runs)

Two services, as BentoML composes them (`bentoml.depends`):

- `Model` loads the package with `onepass.load` once per worker, warms it up, and exposes the
  inference core as a batchable API: uint8 images (N, H, W, 3) at the model's input size -> the raw
  named outputs of the exported graph, one dict per image. BentoML's adaptive batching groups the
  images of concurrent requests into one forward pass. It is reached only through `Onepass`
  (internal socket, pickled numpy arrays, no JSON).
- `Onepass` is the public HTTP server: it mounts the Starlette app of serve/http_api.py (/predict,
  /visualize, the web page, KServe v2) and does the per-request work — decoding uploads, resizing,
  encoding PNGs — in its own threads, so that work overlaps the model's forward passes.

Settings come from BentoML arguments (`--arg key=value`; see serve/settings.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
import bentoml
import numpy as np

import onepass
from onepass.models.package import open_package
from onepass.runtime.predictor import Predictor, resolve_device
from onepass.serve.http_api import Runtime, ServiceUnavailable, build_app, stack_outputs
from onepass.serve.settings import ServeSettings, resolve_model

logger = logging.getLogger("onepass.serve")

SETTINGS = ServeSettings.from_arguments(vars(bentoml.use_arguments()))
MODEL_PATH = resolve_model(SETTINGS.model)  # fails here, before any worker starts, for a bad MODEL
WARMUP_RUNS = 3
CONNECTION_ATTEMPTS = 3


@bentoml.service(
    name="onepass-model",
    workers=SETTINGS.workers,
    traffic={"timeout": 120},
    # The calling client replaces its connection pool every `max_requests` calls, closing connections
    # that other threads' calls are still using (bentoml 1.4.39): keep one pool for the server's life.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
)
class Model:
    """The batched inference core (the exported graph's tensor interface)."""

    def __init__(self) -> None:
        start = time.perf_counter()
        self.predictor = onepass.load(
            MODEL_PATH, backend=SETTINGS.backend, device=SETTINGS.device, precision=SETTINGS.precision
        )
        height, width = self.predictor.config.input_size
        # Warm up before readiness: the first passes pay for allocation, kernel selection, compilation.
        for batch in (1, min(SETTINGS.max_batch_size, 8)) + (1,) * (WARMUP_RUNS - 2):
            self.predictor.backend.run(np.zeros((batch, height, width, 3), np.uint8))
        logger.info(
            "model %s %s loaded on backend %s (%s) and warmed up in %.1f s",
            self.predictor.package.name,
            self.predictor.package.version,
            self.predictor.backend_choice,  # with backend "auto": what it measured, and what it kept
            SETTINGS.precision,
            time.perf_counter() - start,
        )

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
    def run(self, images: np.ndarray) -> list[dict[str, np.ndarray]]:
        """(N, H, W, 3) uint8 -> one dict of named outputs per image (BentoML splits a list per request)."""
        outputs = self.predictor.backend.run(images)
        return [{name: value[i] for name, value in outputs.items()} for i in range(len(images))]

    @bentoml.api
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.predictor.backend.name,
            "device": resolve_device(SETTINGS.device),
            "precision": SETTINGS.precision,
            "choice": self.predictor.backend_choice,
        }


class ModelServiceBackend:
    """A runtime backend whose forward pass runs in the `Model` service (batched across requests)."""

    def __init__(self, model: Any):
        self.model = model
        self.name = "model-service"

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        for attempt in range(CONNECTION_ATTEMPTS):
            try:
                return stack_outputs(self.model.run(images))
            except aiohttp.ClientConnectionError as error:  # idempotent call: a dropped connection is retried
                if attempt + 1 == CONNECTION_ATTEMPTS:
                    raise ServiceUnavailable(f"the model service is unreachable ({error}); try again") from error
                logger.warning("model service call failed (%s); retrying", error)
            except bentoml.exceptions.ServiceUnavailable as error:  # adaptive batching's queue is over max_latency_ms
                raise ServiceUnavailable(f"the model service is overloaded ({error}); try again") from error
        raise AssertionError("not reached")


@bentoml.asgi_app(build_app(lambda: bentoml.get_current_service().runtime, SETTINGS.max_upload_bytes), path="/")
@bentoml.service(name="onepass", traffic={"timeout": 120})
class Onepass:
    """The public HTTP API (serve/http_api.py) in front of the batched model service."""

    model = bentoml.depends(Model)

    def __init__(self) -> None:
        package = open_package(MODEL_PATH)
        self.runtime = Runtime(
            Predictor(package, ModelServiceBackend(self.model)),
            SETTINGS,
            is_ready=self._model_ready,
            describe_backend=self._describe_backend,
        )
        self._backend: dict[str, Any] | None = None

    async def _model_ready(self) -> bool:
        try:
            return await self.model.is_ready(timeout=5)
        except Exception:  # the model service is restarting or gone: not ready
            return False

    async def _describe_backend(self) -> dict[str, Any]:
        if self._backend is None:
            self._backend = await self.model.to_async.describe()
        return self._backend
