"""The public HTTP API, as a Starlette app that the BentoML service mounts (serve/service.py).

POST /predict, POST /visualize, GET / (the web page), GET /samples/..., and the Open Inference
Protocol (KServe v2) under /v2. Each request's work runs in a worker thread; its forward pass goes
through the runtime's backend, which batches concurrent requests (serve/batching.py).

Every error a client can cause is a 4xx with {"error": "<what was wrong>"}. The uploads are parsed
here rather than by BentoML's API layer because that layer answers some bad uploads with a 500
(an image field sent as text is fetched as a URL, for one) and wraps its 4xx messages in a list.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import onepass
from onepass.data.image import BadImage
from onepass.errors import ConfigError
from onepass.models.card import card_footnote, model_card
from onepass.models.panel import result_panel
from onepass.runtime.predictor import Predictor
from onepass.serve import kserve
from onepass.serve.batching import ServiceUnavailable
from onepass.serve.images import decode_upload
from onepass.serve.page import INDEX_HTML
from onepass.serve.settings import ServeSettings

logger = logging.getLogger("onepass.serve")

IMAGE_FIELD = "image"
OPTION_FIELDS = ("tasks", "maps", "previews")
SAMPLE_SEEDS = (7, 11, 2024, 31337)  # synthetic scenes the page offers as samples


class ClientError(Exception):
    """A request the client must fix: HTTP `status` with {"error": message}."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Runtime:
    """What the HTTP layer serves: the model package, a Predictor whose backend runs the model
    (batching concurrent requests when served), and the limits."""

    predictor: Predictor
    settings: ServeSettings
    backend_info: dict[str, Any]  # for /info: backend name, device, precision, what "auto" measured
    _samples: dict[int, bytes] = field(default_factory=dict)
    card: dict[str, Any] = field(init=False)  # the model card: /predict's "model", /info, the page

    def __post_init__(self) -> None:
        self.card = model_card(self.predictor.package)

    @property
    def name(self) -> str:
        return self.predictor.package.name

    @property
    def version(self) -> str:
        return self.predictor.package.version

    def output_specs(self) -> list[kserve.OutputSpec]:
        return [spec for task in self.predictor.config.tasks for spec in task.output_specs()]


# ---- /predict and /visualize ---------------------------------------------------------------


@dataclass(frozen=True)
class PredictOptions:
    tasks: list[str]
    maps: bool
    previews: bool


async def read_image_request(request: Request, runtime: Runtime) -> tuple[bytes, dict[str, str]]:
    """The uploaded image's bytes and the option fields, from a multipart form (field `image`) or
    from a raw image body; options may also come in the query string (form fields win)."""
    options = {k: v for k, v in request.query_params.items() if k in OPTION_FIELDS}
    unknown = sorted(set(request.query_params) - set(OPTION_FIELDS))
    if unknown:
        raise ClientError(f"unknown query parameter(s) {unknown} (valid: {', '.join(OPTION_FIELDS)})")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return await request.body(), options
    if content_type != "multipart/form-data":
        raise ClientError(
            f"send the image as a multipart/form-data upload in the field {IMAGE_FIELD!r} "
            f"(e.g. curl -F image=@photo.jpg), or as the raw body with an image/* content type; got "
            f"{content_type or 'no content type'}",
            415,
        )
    try:
        form = await request.form(max_files=1, max_fields=len(OPTION_FIELDS) + 1)
    except (MultiPartException, HTTPException) as error:
        detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error)
        raise ClientError(
            f"malformed multipart upload: {detail} (send one file, in the field {IMAGE_FIELD!r})"
        ) from None
    try:
        fields = set(form.keys())
        unknown = sorted(fields - {IMAGE_FIELD, *OPTION_FIELDS})
        if unknown:
            raise ClientError(f"unknown form field(s) {unknown} (valid: {IMAGE_FIELD}, {', '.join(OPTION_FIELDS)})")
        upload = form.get(IMAGE_FIELD)
        if upload is None:
            raise ClientError(f"no file: upload the image in the multipart field {IMAGE_FIELD!r}")
        if not isinstance(upload, UploadFile):
            raise ClientError(f"the field {IMAGE_FIELD!r} must be a file upload, not a text value")
        for name in OPTION_FIELDS:
            value = form.get(name)
            if isinstance(value, UploadFile):
                raise ClientError(f"the field {name!r} must be a text value, not a file")
            if value is not None:
                options[name] = value
        return await upload.read(), options
    finally:
        await form.close()


def parse_options(options: Mapping[str, str], predictor: Predictor) -> PredictOptions:
    """tasks: comma-separated task names (default: all); maps, previews: booleans."""
    tasks = None
    if "tasks" in options:
        tasks = [t.strip() for t in options["tasks"].split(",") if t.strip()]
        if not tasks:
            raise ClientError(f"'tasks' is empty; give one or more of: {', '.join(predictor.tasks)}")
    try:
        chosen = predictor.select_tasks(tasks)
    except ConfigError as error:
        raise ClientError(str(error)) from None
    return PredictOptions(
        list(dict.fromkeys(chosen)),
        _parse_bool(options, "maps", True),
        _parse_bool(options, "previews", False),
    )


def _parse_bool(options: Mapping[str, str], name: str, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ClientError(f"{name!r} must be true or false, got {value!r}")


def _png_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _picture_png(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def predict_response(runtime: Runtime, data: bytes, options: PredictOptions) -> dict[str, Any]:
    """Decode, run (batched with concurrent requests), encode: the /predict JSON body."""
    predictor = runtime.predictor
    start = time.perf_counter()
    image = decode_upload(data, runtime.settings.max_image_pixels)
    decoded = time.perf_counter()
    result = predictor.predict(image, tasks=options.tasks)[0]
    inferred = time.perf_counter()
    body: dict[str, Any] = {
        "model": runtime.card,
        "image": {"width": image.width, "height": image.height},
        "tasks": options.tasks,
    }
    chosen = [predictor.tasks[name] for name in options.tasks]
    for task in chosen:  # each task's own part: its maps, attributes, people and audience...
        for key, value in task.response(result[task.name], options.maps).items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key].update(value)  # one "maps" object for every map task
            else:
                body[key] = value
    if options.previews:
        pixels = np.asarray(image)
        pictures = {task.name: task.visualize(result[task.name], pixels) for task in chosen}
        body["previews"] = {name: _png_base64(_picture_png(p)) for name, p in pictures.items() if p is not None}
        legends = {task.name: task.legend(result[task.name]) for task in chosen if pictures[task.name] is not None}
        body["legends"] = {name: legend.to_json() for name, legend in legends.items() if legend is not None}
    end = time.perf_counter()
    body["timings_ms"] = {
        "decode": round((decoded - start) * 1e3, 3),
        "inference": round((inferred - decoded) * 1e3, 3),
        "encode": round((end - inferred) * 1e3, 3),
    }
    return body


def visualize_png(runtime: Runtime, data: bytes, options: PredictOptions) -> bytes:
    """The input, each dense task's picture with its key, the image-level results as text, and the
    model card's caveat: one PNG."""
    predictor = runtime.predictor
    image = decode_upload(data, runtime.settings.max_image_pixels)
    result = predictor.predict(image, tasks=options.tasks)[0]
    panel = result_panel(np.asarray(image), result, predictor.config.tasks, card_footnote(runtime.card))
    buffer = io.BytesIO()
    panel.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- the app ---------------------------------------------------------------------------------


def build_app(get_runtime: Callable[[], Runtime], max_upload_bytes: int) -> Starlette:
    """The routes; `get_runtime` is called per request (the service instance exists only once served)."""

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        runtime = get_runtime()
        data, fields = await read_image_request(request, runtime)
        options = parse_options(fields, runtime.predictor)
        body = await anyio.to_thread.run_sync(predict_response, runtime, data, options)
        body["timings_ms"]["total"] = round((time.perf_counter() - start) * 1e3, 3)
        return Response(orjson.dumps(body), media_type="application/json")  # ~10x faster than json for the maps

    async def visualize(request: Request) -> Response:
        runtime = get_runtime()
        data, fields = await read_image_request(request, runtime)
        options = parse_options(fields, runtime.predictor)
        png = await anyio.to_thread.run_sync(visualize_png, runtime, data, options)
        return Response(png, media_type="image/png")

    async def index(request: Request) -> Response:
        return HTMLResponse(INDEX_HTML)

    async def info(request: Request) -> Response:
        runtime = get_runtime()
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
        runtime = get_runtime()
        index = request.path_params["index"]
        if not 0 <= index < len(SAMPLE_SEEDS):
            raise ClientError(f"no sample {index}; there are {len(SAMPLE_SEEDS)} (0..{len(SAMPLE_SEEDS) - 1})", 404)
        if index not in runtime._samples:
            runtime._samples[index] = await anyio.to_thread.run_sync(render_sample, index)
        return Response(runtime._samples[index], media_type="image/png")

    # ---- Open Inference Protocol (KServe v2) ----

    def model_runtime(request: Request) -> Runtime:
        runtime = get_runtime()
        name = request.path_params["model"]
        if name != runtime.name:
            raise ClientError(f"unknown model {name!r}; this server serves {runtime.name!r}", 404)
        version = request.path_params.get("version")
        if version is not None and version != runtime.version:
            raise ClientError(f"model {name!r} has no version {version!r}; it is version {runtime.version!r}", 404)
        return runtime

    async def v2_server(request: Request) -> Response:
        return JSONResponse({"name": "onepass", "version": onepass.__version__, "extensions": ["binary_tensor_data"]})

    async def v2_live(request: Request) -> Response:
        return JSONResponse({"live": True})

    # A worker serves only once its model is loaded and warmed up, so whoever answers is ready.
    async def v2_ready(request: Request) -> Response:
        get_runtime()
        return JSONResponse({"ready": True})

    async def v2_model(request: Request) -> Response:
        runtime = model_runtime(request)
        return JSONResponse(
            kserve.model_metadata(
                runtime.name, runtime.version, runtime.predictor.config.input_size, runtime.output_specs()
            )
        )

    async def v2_model_ready(request: Request) -> Response:
        runtime = model_runtime(request)
        return JSONResponse({"name": runtime.name, "ready": True})

    async def v2_infer(request: Request) -> Response:
        runtime = model_runtime(request)
        body = await request.body()
        names = [spec.name for spec in runtime.output_specs()]
        header_length = request.headers.get(kserve.HEADER_LENGTH)
        parse = functools.partial(kserve.parse_request, body, header_length, runtime.predictor.config.input_size, names)
        try:
            infer = await anyio.to_thread.run_sync(parse)
        except kserve.InferenceRequestError as error:
            raise ClientError(str(error)) from None
        outputs = await anyio.to_thread.run_sync(runtime.predictor.backend.run, infer.image)
        content, json_length = await anyio.to_thread.run_sync(
            kserve.build_response, runtime.name, runtime.version, infer, outputs
        )
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content, media_type="application/octet-stream", headers={kserve.HEADER_LENGTH: str(json_length)}
        )

    model = "/v2/models/{model}"
    versioned = "/v2/models/{model}/versions/{version}"
    endpoints = [
        ("GET", "/", index),
        ("GET", "/info", info),
        ("GET", "/samples/{index:int}.png", sample),
        ("POST", "/predict", predict),
        ("POST", "/visualize", visualize),
        ("GET", "/v2", v2_server),
        ("GET", "/v2/health/live", v2_live),
        ("GET", "/v2/health/ready", v2_ready),
    ]
    for prefix in (model, versioned):
        endpoints += [("GET", prefix, v2_model), ("GET", prefix + "/ready", v2_model_ready)]
        endpoints += [("POST", prefix + "/infer", v2_infer)]
    routes = [Route(path, json_errors(endpoint), methods=[method]) for method, path, endpoint in endpoints]
    return Starlette(routes=routes, middleware=[Middleware(BodySizeLimit, max_bytes=max_upload_bytes)])


def json_errors(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Errors as JSON: a client's mistake -> its 4xx and message; anything else -> 500, logged."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except BadImage as error:
            return JSONResponse({"error": f"bad image upload: {error}"}, status_code=error.status)
        except HTTPException as error:
            return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)
        except ServiceUnavailable as error:
            logger.error("%s %s: %s", request.method, request.url.path, error)
            return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "1"})
        except Exception:
            logger.exception("unexpected error serving %s %s", request.method, request.url.path)
            return JSONResponse({"error": "internal server error; the server log has the details"}, status_code=500)

    return wrapped


def render_sample(index: int) -> bytes:
    """A synthetic scene (the kind the shipped model was trained on) as a PNG, for the web page."""
    from onepass.data.synth import render_scene

    scene = render_scene(np.random.default_rng(SAMPLE_SEEDS[index]), 256, 320)
    return _picture_png(scene.image)


# ---- request body limit ----------------------------------------------------------------------


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before the app reads it.

    A declared Content-Length is checked up front; a chunked body is read up to the limit first.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(send, 400, f"Content-Length {declared.decode(errors='replace')!r} is not a number")
            elif int(declared) > self.max_bytes:
                await self._refuse(send, 413, self._message(int(declared)))
            else:
                await self.app(scope, receive, send)
            return
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, 413, self._message(size, at_least=True))
                return
            body.append(chunk)
            more = message.get("more_body", False)
        replay: list[Message] = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replay_receive() -> Message:
            if replay:
                return replay.pop()
            return await receive()

        await self.app(scope, replay_receive, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        limit_mb = self.max_bytes / (1024 * 1024)
        return (
            f"the request body is {'over ' if at_least else ''}{size} bytes, over this server's upload limit of "
            f"{self.max_bytes} bytes ({limit_mb:g} MB; `onepass serve --max-upload-mb` sets it)"
        )

    @staticmethod
    async def _refuse(send: Send, status: int, message: str) -> None:
        response = JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})
        await response({"type": "http"}, _never_receive, send)


async def _never_receive() -> Message:
    await asyncio.Event().wait()  # a response that does not read the request never calls this
    return {"type": "http.disconnect"}
