"""The public HTTP API, as a Starlette app that the BentoML service mounts (serve/service.py).

    POST /predict               an image -> JSON: every chosen task's answer (serve/responses.py)
    POST /visualize             an image -> a PNG panel of the answers
    GET  /                      the web page (serve/page.py); GET /info and GET /samples/{i}.png feed it
    /v2/...                     the Open Inference Protocol, KServe v2 (serve/kserve_routes.py)

The handlers are plain module-level functions: each reads the worker's Runtime from the app's state
(serve/state.py), which the service sets once the model is loaded. A request's work (parsing the
upload, decoding, the forward pass, encoding) runs in worker threads; the forward pass goes through
the runtime's backend, which batches concurrent requests (serve/batching.py). Every error a request
ends in is JSON (serve/http_errors.py), and a body over the upload limit is refused before it is
read (serve/body_limit.py).
"""

from __future__ import annotations

import time

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import onepass
from onepass.serve import kserve_routes
from onepass.serve.body_limit import BodySizeLimit
from onepass.serve.http_errors import EXCEPTION_HANDLERS, ClientError, Endpoint, json_errors
from onepass.serve.page import INDEX_HTML
from onepass.serve.responses import predict_body, visualize_png
from onepass.serve.sample_scenes import SAMPLE_SEEDS, sample_png
from onepass.serve.state import Runtime, runtime_of, set_runtime
from onepass.serve.uploads import parse_options, read_image_request


async def predict(request: Request) -> Response:
    start = time.perf_counter()
    runtime = runtime_of(request)
    data, fields = await read_image_request(request)
    options = parse_options(fields, runtime.predictor)
    body = await anyio.to_thread.run_sync(predict_body, runtime, data, options)
    body["timings_ms"]["total"] = round((time.perf_counter() - start) * 1e3, 3)
    return Response(orjson.dumps(body), media_type="application/json")  # ~10x faster than json for the maps


async def visualize(request: Request) -> Response:
    runtime = runtime_of(request)
    data, fields = await read_image_request(request)
    options = parse_options(fields, runtime.predictor)
    png = await anyio.to_thread.run_sync(visualize_png, runtime, data, options)
    return Response(png, media_type="image/png")


async def index(request: Request) -> Response:
    return HTMLResponse(INDEX_HTML)


async def info(request: Request) -> Response:
    """The model (its card, input size and tasks), the backend, the limits and the samples: what the page shows."""
    runtime = runtime_of(request)
    package = runtime.predictor.package
    return JSONResponse(
        {
            "model": {"name": package.name, "version": package.version},
            "card": runtime.card,
            "input_size": list(package.config.input_size),
            "tasks": {t.name: t.to_config() for t in package.config.tasks},
            "backend": runtime.backend_info,
            "samples": [f"samples/{i}.png" for i in range(len(SAMPLE_SEEDS))],
            "limits": {
                "max_upload_bytes": runtime.settings.max_upload_bytes,
                "max_image_pixels": runtime.settings.max_image_pixels,
            },
            "onepass": onepass.__version__,
        }
    )


async def sample(request: Request) -> Response:
    index = request.path_params["index"]
    if not 0 <= index < len(SAMPLE_SEEDS):
        raise ClientError(f"no sample {index}; there are {len(SAMPLE_SEEDS)} (0..{len(SAMPLE_SEEDS) - 1})", 404)
    return Response(await anyio.to_thread.run_sync(sample_png, index), media_type="image/png")


ROUTES: list[tuple[str, str, Endpoint]] = [  # (method, path, handler)
    ("GET", "/", index),
    ("GET", "/info", info),
    ("GET", "/samples/{index:int}.png", sample),
    ("POST", "/predict", predict),
    ("POST", "/visualize", visualize),
]


def build_app(max_upload_bytes: int, runtime: Runtime | None = None) -> Starlette:
    """Every route, each answering its errors as JSON, behind the upload limit. The handlers serve
    `runtime`, or the one `set_runtime` puts on the app later (the service does, once its model is
    loaded); until then they answer 503."""
    routes = [
        Route(path, json_errors(endpoint), methods=[method])
        for method, path, endpoint in (*ROUTES, *kserve_routes.ROUTES)
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BodySizeLimit, max_bytes=max_upload_bytes)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    if runtime is not None:
        set_runtime(app, runtime)
    return app
