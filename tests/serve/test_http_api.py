"""The HTTP app in process (Starlette's TestClient, no server), over a tiny model with one task of every
registered type: the handlers find the model on the app's state, the previews' pictures, keys and
words come from each task's hooks, and every error is JSON."""

from __future__ import annotations

import base64
import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

import onepass
from onepass.models import MultiTaskModel, save_package
from onepass.serve.http_api import build_app
from onepass.serve.settings import ServeSettings
from onepass.serve.state import Runtime, set_runtime
from tests.tiny import every_task_type, tiny_config


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    path = tmp_path_factory.mktemp("serve") / "tiny"
    torch.manual_seed(0)
    save_package(path, MultiTaskModel(tiny_config(tasks=every_task_type())).eval(), "tiny")
    return Runtime(onepass.load(path, backend="torch", device="cpu"), ServeSettings(), {"name": "torch"})


@pytest.fixture(scope="module")
def client(runtime):
    with TestClient(build_app(1 << 20, runtime)) as client:
        yield client


def picture(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_previews_keys_and_words_come_from_every_task_s_hooks(client, runtime):
    image = picture(1)
    body = client.post("/predict", files={"image": ("x.png", png(image))}, data={"previews": "true"}).json()
    tasks = runtime.predictor.config.tasks
    assert body["tasks"] == [t.name for t in tasks]
    expected = runtime.predictor.predict(image)[0]
    drawn = [t for t in tasks if t.visualize(expected[t.name], image) is not None]
    assert list(body["previews"]) == [t.name for t in drawn] and len(drawn) >= 4
    for name, preview in body["previews"].items():
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(preview))))
        np.testing.assert_array_equal(shown, runtime.predictor.tasks[name].visualize(expected[name], image))
    keys = {t.name: t.legend(expected[t.name]) for t in drawn}
    assert body["legends"] == {name: key.to_json() for name, key in keys.items() if key is not None}
    words = {t.name: t.describe(expected[t.name]) for t in tasks}
    assert body["text"] == {name: lines for name, lines in words.items() if lines}
    # the people task's audience summary is in the words the page shows beside the maps
    people = body["text"]["people"]
    assert people[0].startswith(f"{body['audience']['count']} people") and len(body["text"]) >= 2
    plain = client.post("/predict", files={"image": ("x.png", png(image))}).json()
    assert not {"previews", "legends", "text"} & set(plain)


def test_handlers_read_the_runtime_from_the_app_state(runtime):
    app = build_app(1 << 20)
    with TestClient(app) as client:
        for path in ("/info", "/v2/health/ready", f"/v2/models/{runtime.name}"):
            early = client.get(path)
            assert early.status_code == 503 and early.headers["retry-after"] == "1", path
            assert "not loaded yet" in early.json()["error"]
        assert client.get("/").status_code == 200  # the page itself needs no model
        set_runtime(app, runtime)
        info = client.get("/info").json()
        assert info["model"] == {"name": "tiny", "version": runtime.version} and info["backend"] == {"name": "torch"}
        assert client.get("/v2/health/ready").json() == {"ready": True}


def test_an_unexpected_error_is_a_logged_500_that_tells_the_client_nothing_more(client, runtime, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(runtime.predictor, "predict", broken)
    with caplog.at_level(logging.ERROR, logger="onepass.serve"):
        response = client.post("/predict", files={"image": ("x.png", png(picture(2)))})
    assert response.status_code == 500 and "secret" not in response.text
    assert response.json() == {"error": "internal server error; the server log has the details"}
    assert "unexpected error serving POST /predict" in caplog.text and "secret detail" in caplog.text


def test_a_path_or_method_no_route_has_is_a_json_4xx(client):
    missing = client.get("/predcit")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}
    assert wrong.headers["allow"] == "POST"


def test_client_errors_keep_their_status_and_message(client, runtime):
    cases = {
        # request: (status, words of the message)
        lambda: client.post("/predict", files={"image": ("x.png", b"nope")}): (400, "bad image upload: "),
        lambda: client.post("/predict", content=b"x", headers={"content-type": "text/plain"}): (415, "multipart"),
        lambda: client.get("/samples/4.png"): (404, "no sample 4"),
        lambda: client.get("/v2/models/tiny/versions/99"): (404, "has no version '99'"),
        lambda: client.post("/visualize", content=b"\0" * ((1 << 20) + 1), headers={"content-type": "image/png"}): (
            413,
            "upload limit",
        ),
    }
    for request, (status, words) in cases.items():
        response = request()
        assert response.status_code == status and words in response.json()["error"], response.text


def test_maps_at_the_models_resolution_on_request(client, runtime):
    image = picture(2, 90, 120)
    height, width = runtime.predictor.config.input_size
    for maps_at, size in (("frame", (90, 120)), ("model", (height, width))):
        response = client.post("/predict", files={"image": ("x.png", png(image))}, data={"maps_at": maps_at})
        assert response.status_code == 200, response.text
        for name, encoded in response.json()["maps"].items():
            shown = Image.open(io.BytesIO(base64.b64decode(encoded["png"])))
            assert shown.size == (size[1], size[0]), (maps_at, name)
    body = client.post("/predict?maps_at=model&previews=true", files={"image": ("x.png", png(image))}).json()
    assert body["previews"] and "people" not in body["previews"]  # nothing drawn over a frame of another size
    response = client.post("/predict?maps_at=frames", files={"image": ("x.png", png(image))})
    assert response.status_code == 400 and "'maps_at' must be one of frame, model" in response.json()["error"]
    response = client.post("/visualize?maps_at=model", files={"image": ("x.png", png(image))})
    assert response.status_code == 400 and "/visualize draws every map" in response.json()["error"]
