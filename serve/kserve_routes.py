"""The Open Inference Protocol (KServe v2) REST endpoints, under /v2, over the model's raw tensors.

The request and response bodies are serve/kserve.py's (plain Python + numpy); these handlers check
the model name and version in the path, run the parsing, the forward pass (batched with concurrent
requests) and the encoding in worker threads, and raise ClientError for a client's mistake.
"""

from __future__ import annotations

import functools

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import onepass
from onepass.serve import kserve
from onepass.serve.http_errors import ClientError, Endpoint
from onepass.serve.state import Runtime, runtime_of


def model_runtime(request: Request) -> Runtime:
    """The runtime, once the path's model name (and version, if any) are the served model's."""
    runtime = runtime_of(request)
    name = request.path_params["model"]
    if name != runtime.name:
        raise ClientError(f"unknown model {name!r}; this server serves {runtime.name!r}", 404)
    version = request.path_params.get("version")
    if version is not None and version != runtime.version:
        raise ClientError(f"model {name!r} has no version {version!r}; it is version {runtime.version!r}", 404)
    return runtime


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "onepass", "version": onepass.__version__, "extensions": ["binary_tensor_data"]})


async def server_live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def server_ready(request: Request) -> Response:
    runtime_of(request)  # a worker serves once its model is loaded and warmed up, so whoever answers is ready
    return JSONResponse({"ready": True})


async def model_metadata(request: Request) -> Response:
    runtime = model_runtime(request)
    return JSONResponse(
        kserve.model_metadata(
            runtime.name, runtime.version, runtime.predictor.config.input_size, runtime.output_specs()
        )
    )


async def model_ready(request: Request) -> Response:
    runtime = model_runtime(request)
    return JSONResponse({"name": runtime.name, "ready": True})


async def infer(request: Request) -> Response:
    runtime = model_runtime(request)
    body = await request.body()
    names = [spec.name for spec in runtime.output_specs()]
    header_length = request.headers.get(kserve.HEADER_LENGTH)
    parse = functools.partial(kserve.parse_request, body, header_length, runtime.predictor.config.input_size, names)
    try:
        parsed = await anyio.to_thread.run_sync(parse)
    except kserve.InferenceRequestError as error:
        raise ClientError(str(error)) from None
    outputs = await anyio.to_thread.run_sync(runtime.predictor.backend.run, parsed.image)
    content, json_length = await anyio.to_thread.run_sync(
        kserve.build_response, runtime.name, runtime.version, parsed, outputs
    )
    if json_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream", headers={kserve.HEADER_LENGTH: str(json_length)})


def _model_routes(prefix: str) -> list[tuple[str, str, Endpoint]]:
    return [
        ("GET", prefix, model_metadata),
        ("GET", prefix + "/ready", model_ready),
        ("POST", prefix + "/infer", infer),
    ]


ROUTES: list[tuple[str, str, Endpoint]] = [  # (method, path, handler); serve/http_api.py mounts them
    ("GET", "/v2", server_metadata),
    ("GET", "/v2/health/live", server_live),
    ("GET", "/v2/health/ready", server_ready),
    *_model_routes("/v2/models/{model}"),
    *_model_routes("/v2/models/{model}/versions/{version}"),
]
