"""The answers of POST /predict (a JSON body) and POST /visualize (a PNG panel).

Every part of them comes from the chosen tasks' hooks (models/tasks/base.py): `response` for each
task's own fields, and with previews `visualize`, `legend` and `describe` for what the web page
shows. Nothing here knows a task by its name or kind.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from onepass.models.card import card_footnote
from onepass.models.panel import result_panel
from onepass.models.tasks.base import Task
from onepass.serve.http_errors import ClientError
from onepass.serve.images import decode_upload
from onepass.serve.state import Runtime
from onepass.serve.uploads import PredictOptions


def predict_body(runtime: Runtime, data: bytes, options: PredictOptions) -> dict[str, Any]:
    """Decode, run (batched with concurrent requests), encode: the /predict JSON body."""
    predictor = runtime.predictor
    start = time.perf_counter()
    image = decode_upload(data, runtime.settings.max_image_pixels)
    decoded = time.perf_counter()
    # Without maps or previews the maps are dropped from the answer: leave them at the model's size rather
    # than resize them to the image's first (measured: 2.7 ms of a 240x320 request's 19)
    maps_at = options.maps_at if options.maps or options.previews else "model"
    result = predictor.predict(image, tasks=options.tasks, maps_at=maps_at)[0]
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
    if options.previews:  # drawn over the image where the maps are at its size
        body.update(preview_sections(chosen, result, np.asarray(image) if options.maps_at == "frame" else None))
    end = time.perf_counter()
    body["timings_ms"] = {
        "decode": round((decoded - start) * 1e3, 3),
        "inference": round((inferred - decoded) * 1e3, 3),
        "encode": round((end - inferred) * 1e3, 3),
    }
    return body


def preview_sections(tasks: Sequence[Task], result: Mapping[str, Any], image: np.ndarray | None) -> dict[str, dict]:
    """What the web page shows of one image's `result`, task by task: `previews`, each picture drawn by
    `visualize` (a base64 PNG); `legends`, each picture's key (`legend`, as JSON); `text`, the result
    in words (`describe`: one string per line). A task that draws no picture, needs no key or says
    nothing in words has no entry in that section."""
    previews: dict[str, str] = {}
    legends: dict[str, Any] = {}
    text: dict[str, list[str]] = {}
    for task in tasks:
        value = result[task.name]
        picture = task.visualize(value, image)
        if picture is not None:
            previews[task.name] = base64.b64encode(picture_png(picture)).decode("ascii")
            legend = task.legend(value)
            if legend is not None:
                legends[task.name] = legend.to_json()
        if lines := task.describe(value):
            text[task.name] = lines
    return {"previews": previews, "legends": legends, "text": text}


def visualize_png(runtime: Runtime, data: bytes, options: PredictOptions) -> bytes:
    """The input, each task's picture with its key, the results said in words, and the model card's
    caveat: one PNG (models/panel.py)."""
    predictor = runtime.predictor
    if options.maps_at != "frame":
        raise ClientError("'maps_at' is for /predict: /visualize draws every map over the image, at its size")
    image = decode_upload(data, runtime.settings.max_image_pixels)
    result = predictor.predict(image, tasks=options.tasks)[0]
    panel = result_panel(np.asarray(image), result, predictor.config.tasks, card_footnote(runtime.card))
    buffer = io.BytesIO()
    panel.save(buffer, format="PNG")
    return buffer.getvalue()


def picture_png(picture: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 picture as a PNG, compressed little: it is for viewing, and sent at once."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
