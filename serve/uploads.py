"""The request of POST /predict and /visualize: the uploaded image's bytes and the option fields.

The upload is parsed here rather than by BentoML's API layer because that layer answers some bad
uploads with a 500 (an image field sent as text is fetched as a URL, for one) and wraps its 4xx
messages in a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from onepass.errors import ConfigError
from onepass.runtime.predictor import MAPS_AT, Predictor
from onepass.serve.http_errors import ClientError

IMAGE_FIELD = "image"
OPTION_FIELDS = ("tasks", "maps", "previews", "maps_at")


@dataclass(frozen=True)
class PredictOptions:
    tasks: list[str]  # the chosen tasks' names, in the order asked for, each once
    maps: bool  # the dense maps, in each task's file encoding
    previews: bool  # each task's picture with its key, and its results in words (what the web page shows)
    maps_at: str = "frame"  # the maps at the image's size, or "model": at the model's input size (the cheapest)


async def read_image_request(request: Request) -> tuple[bytes, dict[str, str]]:
    """The uploaded image's bytes and the option fields, from a multipart form (field `image`) or
    from a raw image body; options may also come in the query string (form fields win)."""
    options = {k: v for k, v in request.query_params.items() if k in OPTION_FIELDS}
    unknown = sorted(set(request.query_params) - set(OPTION_FIELDS))
    if unknown:
        raise ClientError(f"unknown query parameter(s) {unknown} (valid: {', '.join(OPTION_FIELDS)})")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(("image/", "video/")) or content_type == "application/octet-stream":
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
    """tasks: comma-separated task names (default: all); maps, previews: booleans; maps_at: frame|model."""
    tasks = None
    if "tasks" in options:
        tasks = [t.strip() for t in options["tasks"].split(",") if t.strip()]
        if not tasks:
            raise ClientError(f"'tasks' is empty; give one or more of: {', '.join(predictor.tasks)}")
    try:
        chosen = predictor.select_tasks(tasks)
    except ConfigError as error:
        raise ClientError(str(error)) from None
    maps_at = options.get("maps_at", "frame").strip().lower()
    if maps_at not in MAPS_AT:
        raise ClientError(f"'maps_at' must be one of {', '.join(MAPS_AT)}, got {options['maps_at']!r}")
    return PredictOptions(
        list(dict.fromkeys(chosen)),
        _parse_bool(options, "maps", True),
        _parse_bool(options, "previews", False),
        maps_at,
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
