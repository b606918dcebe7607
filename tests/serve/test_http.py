"""The real server over HTTP: /predict matches the in-process Predictor, bad input is a clear 4xx and
the server keeps serving, concurrent requests are batched, /visualize, the page and its samples."""

from __future__ import annotations

import base64
import io
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from onepass.data.codecs import DepthPngCodec, IndexedPngCodec, NormalsPngCodec
from onepass.models import open_package
from onepass.models.card import model_card
from onepass.models.panel import TITLE_HEIGHT, panel_width, tile_size
from tests.people import assert_same_people, expected_audience
from tests.serve.conftest import MAX_UPLOAD_MB
from tests.serve.samples import bomb_png, encode, exif_rotated_jpeg, mode_variants, scene


def post_image(client, data: bytes, path: str = "/predict", **fields):
    return client.post(path, files={"image": ("upload", data)}, data=fields)


def decode_maps(body) -> dict[str, np.ndarray]:
    codecs = {"semseg": IndexedPngCodec(), "depth": DepthPngCodec(), "normals": NormalsPngCodec()}
    return {name: codecs[name].decode(base64.b64decode(m["png"]), name) for name, m in body["maps"].items()}


@pytest.mark.parametrize(("seed", "size"), [(101, (150, 200)), (202, (240, 180)), (303, (128, 160))])
def test_predict_matches_the_in_process_predictor(client, predictor, seed, size):
    image = scene(seed, *size)
    response = post_image(client, encode(image))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = predictor.predict(image)[0]
    package = predictor.package
    assert body["model"] == model_card(package)  # name, version, what it was trained on, the caveat
    assert body["model"]["name"] == package.name and body["model"]["version"] == package.version
    assert body["image"] == {"width": size[1], "height": size[0]}
    assert body["tasks"] == ["semseg", "depth", "normals", "people"]
    assert set(body["timings_ms"]) == {"decode", "inference", "encode", "total"}
    assert expected["people"]  # the scene shows people: the persons themselves are compared
    assert_same_people(body["people"], expected["people"])
    assert body["audience"] == expected_audience(expected["people"], package.config.task("people").attributes)
    maps = decode_maps(body)
    assert maps["semseg"].shape == size and maps["depth"].shape == size and maps["normals"].shape == (*size, 3)
    assert (maps["semseg"] == expected["semseg"]).mean() > 0.999
    np.testing.assert_allclose(maps["depth"], expected["depth"], atol=1e-3 * 0.5 + 1e-4)  # PNG holds millimetres
    angle = np.degrees(np.arccos(np.clip((maps["normals"] * expected["normals"]).sum(-1), -1, 1)))
    assert np.percentile(angle, 99) < 1.0  # RGB PNG quantisation: 1/127.5 per component


def test_tasks_and_maps_fields_choose_the_output(client):
    data = encode(scene(5))
    body = post_image(client, data, tasks="depth,people", maps="false").json()
    assert body["tasks"] == ["depth", "people"] and "maps" not in body and body["people"] and "audience" in body
    body = client.post("/predict?tasks=semseg", files={"image": ("x.png", data)}).json()
    assert body["tasks"] == ["semseg"] and list(body["maps"]) == ["semseg"]
    assert "people" not in body and "audience" not in body
    body = post_image(client, data, tasks="normals", previews="true").json()
    preview = Image.open(io.BytesIO(base64.b64decode(body["previews"]["normals"])))
    assert preview.size == (200, 150) and preview.mode == "RGB"
    assert list(body["legends"]) == ["normals"] and body["legends"]["normals"]["kind"] == "picture"
    assert "legends" not in post_image(client, data, tasks="normals").json()  # keys come with the previews


def test_without_maps_the_answer_is_what_it_was_with_the_maps_resized_and_dropped(client, predictor):
    """maps=false leaves the maps at the model's size (they are not sent): every other field is what the
    image-size path gives, people boxes in the image's pixels included."""
    image = scene(7, 150, 200)
    body = post_image(client, encode(image), maps="false").json()
    expected = predictor.predict(image, maps_at="frame")[0]
    assert body["people"] == expected["people"] and body["image"] == {"width": 200, "height": 150}
    assert body["audience"] == predictor.tasks["people"].summary(expected["people"])


def test_previews_come_with_their_keys(client, predictor):
    image = scene(12, 120, 160)
    body = post_image(client, encode(image), previews="true", maps="false").json()
    assert list(body["previews"]) == ["semseg", "depth", "normals", "people"]
    assert list(body["legends"]) == ["semseg", "depth", "normals", "people"]
    semseg = predictor.predict(image)[0]["semseg"]
    classes = predictor.tasks["semseg"].classes
    present = [classes[i] for i in np.unique(semseg)]
    assert [item["label"] for item in body["legends"]["semseg"]["items"]] == present  # the classes shown, in order
    depth = body["legends"]["depth"]
    assert depth["kind"] == "colour_bar" and depth["title"] == "depth (m)"
    assert [t["label"] for t in depth["ticks"]][0] == "0.5" and depth["ticks"][-1] == {"at": 1.0, "label": "10"}
    people = body["legends"]["people"]  # what the boxes' colours mean, and how many each marks
    looking = sum(p["looking"]["label"] == "yes" for p in predictor.predict(image)[0]["people"])
    assert people["kind"] == "swatches" and people["items"][0]["label"] == f"looking ({looking})"


def test_raw_image_body_is_accepted(client):
    response = client.post("/predict?maps=false", content=encode(scene(6)), headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json()["image"] == {"width": 200, "height": 150}


EIGHT_BIT_VARIANTS = [v for v in mode_variants(Image.new("RGB", (4, 4))) if v != "I;16 PNG"]


@pytest.mark.parametrize("variant", EIGHT_BIT_VARIANTS)
def test_common_image_modes_are_served(client, predictor, variant):
    data = mode_variants(scene(8, 90, 120))[variant]
    response = post_image(client, data, maps="false")
    assert response.status_code == 200, response.text
    expected = predictor.predict(Image.open(io.BytesIO(data)).convert("RGB"))[0]
    assert expected["people"]  # the scene shows people
    assert_same_people(response.json()["people"], expected["people"])  # Pillow's own convert matches ours (8 bits)


def test_a_16_bit_greyscale_upload_is_answered_as_the_same_picture_in_8_bits(client):
    """The 16-bit PNG holds the 8-bit greyscale values times 257, so scaled (not clipped) it is the
    8-bit picture exactly, and both uploads must get the same answer."""
    variants = mode_variants(scene(8, 90, 120))
    assert Image.open(io.BytesIO(variants["I;16 PNG"])).mode == "I;16"
    deep, flat = (post_image(client, variants[name]) for name in ("I;16 PNG", "L PNG"))
    assert deep.status_code == flat.status_code == 200, deep.text
    deep, flat = deep.json(), flat.json()
    assert deep["image"] == flat["image"] == {"width": 120, "height": 90}
    assert flat["people"]  # the scene shows people
    assert_same_people(deep["people"], flat["people"])
    assert deep["audience"] == flat["audience"]
    deep_maps, flat_maps = decode_maps(deep), decode_maps(flat)
    assert (deep_maps["semseg"] == flat_maps["semseg"]).mean() > 0.999
    np.testing.assert_allclose(deep_maps["depth"], flat_maps["depth"], atol=2e-3)  # millimetres in the PNG
    np.testing.assert_allclose(deep_maps["normals"], flat_maps["normals"], atol=2 / 127.5)


def test_exif_orientation_is_applied(client):
    body = post_image(client, exif_rotated_jpeg(scene(9, 60, 80)), maps="false").json()
    assert body["image"] == {"width": 60, "height": 80}


BAD_INPUTS = {
    # name: (request, expected status, words the error message must contain)
    "no file": (lambda c: c.post("/predict", files={"maps": (None, "false")}), 400, "no file"),
    "empty file": (lambda c: post_image(c, b""), 400, "empty"),
    "not an image": (lambda c: post_image(c, b"%PDF-1.4 definitely not a picture"), 400, "not an image"),
    "truncated image": (lambda c: post_image(c, encode(scene(1))[:500]), 400, "could not be decoded"),
    "decompression bomb": (lambda c: post_image(c, bomb_png(100_000, 100_000)), 413, "too large"),
    "over the pixel limit": (lambda c: post_image(c, bomb_png(9000, 9000)), 413, "over this server's limit"),
    "over the upload limit": (
        lambda c: post_image(c, b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 1)),
        413,
        "upload limit",
    ),
    "over the upload limit, chunked": (
        lambda c: c.post(
            "/predict", content=iter([b"\0" * 65536] * (MAX_UPLOAD_MB * 16 + 1)), headers={"content-type": "image/png"}
        ),
        413,
        "upload limit",
    ),
    "unknown task": (lambda c: post_image(c, encode(scene(1)), tasks="dpeth"), 400, "did you mean 'depth'"),
    "empty task list": (lambda c: post_image(c, encode(scene(1)), tasks=" , "), 400, "'tasks' is empty"),
    "bad boolean": (lambda c: post_image(c, encode(scene(1)), maps="perhaps"), 400, "true or false"),
    "unknown field": (lambda c: post_image(c, encode(scene(1)), colour="red"), 400, "unknown form field"),
    "image as text": (
        lambda c: c.post("/predict", data={"image": "http://example.com/a.png"}, files={"maps": (None, "false")}),
        400,
        "file upload",
    ),
    "two files": (
        lambda c: c.post("/predict", files=[("image", ("a", b"1")), ("image", ("b", b"2"))]),
        400,
        "malformed multipart",
    ),
    "JSON body": (lambda c: c.post("/predict", json={"image": "a.png"}), 415, "multipart/form-data"),
    "unknown query parameter": (
        lambda c: c.post("/predict?task=depth", content=b"x", headers={"content-type": "image/png"}),
        400,
        "unknown query",
    ),
    "visualize: not an image": (lambda c: post_image(c, b"GIF89a nonsense", "/visualize"), 400, "image"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(client, case):
    request, status, words = BAD_INPUTS[case]
    response = request(client)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert words in response.json()["error"]
    # still serving
    assert post_image(client, encode(scene(2, 40, 50)), maps="false").status_code == 200


def test_concurrent_requests_all_succeed_and_are_batched(server, predictor):
    images = [encode(scene(seed, 96, 128)) for seed in range(8)]
    expected = [predictor.predict(Image.open(io.BytesIO(d)))[0]["people"] for d in images]
    assert sum(1 for people in expected if people) >= 4  # most of the scenes show people

    def one(i: int):
        with server.client() as c:
            return i % 8, post_image(c, images[i % 8], maps="false")

    with server.client() as c:
        before = batch_size_histogram(c.get("/metrics").text)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    assert all(r.status_code == 200 for _, r in results), [r.text for _, r in results if r.status_code != 200][:3]
    for i, response in results:  # each answer is its own image's, however the requests were batched
        assert_same_people(response.json()["people"], expected[i])
    with server.client() as c:
        metrics = c.get("/metrics").text
    after = batch_size_histogram(metrics)
    sizes = {bound: after[bound] - before.get(bound, 0) for bound in after}  # batches formed by this test
    assert sum(sizes.values()) < 64, sizes  # fewer forward passes than requests
    assert max(size for size, count in sizes.items() if count) >= 2, sizes


def batch_size_histogram(metrics: str) -> dict[float, int]:
    """The server's onepass_adaptive_batch_size histogram: batch size bucket -> batches in it alone."""
    cumulative = {}
    for line in metrics.splitlines():
        match = re.match(r'onepass_adaptive_batch_size_bucket\{le="([^"]+)"[^}]*\} (\S+)', line)
        if match and match.group(1) != "+Inf":
            cumulative[float(match.group(1))] = cumulative.get(float(match.group(1)), 0) + float(match.group(2))
    sizes, previous = {}, 0.0
    for bound in sorted(cumulative):
        sizes[bound] = int(cumulative[bound] - previous)
        previous = cumulative[bound]
    return sizes


def test_visualize_returns_a_panel(client):
    response = post_image(client, encode(scene(4, 96, 128)), "/visualize")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    panel = Image.open(io.BytesIO(response.content))
    height, width = tile_size(96, 128)
    assert panel.width == panel_width(width, 5, text=True)  # input, semseg, depth, normals, people; the audience
    assert panel.height > TITLE_HEIGHT + height + 40  # the keys under the maps, the caveat at the foot
    assert np.asarray(panel).std() > 10


def test_page_info_samples_and_bentoml_endpoints(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>onepass</title>" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # self-contained: works offline
    info = client.get("/info").json()
    assert info["model"]["name"] == "onepass-default" and info["backend"]["name"]
    assert info["card"] == model_card(open_package("default"))
    assert info["card"]["data"] == "synthetic" and "not meaningful" in info["card"]["caveat"]
    sample = client.get("/" + info["samples"][0])
    assert sample.status_code == 200 and Image.open(io.BytesIO(sample.content)).size == (320, 256)
    assert client.get("/samples/99.png").status_code == 404
    assert client.get("/livez").status_code == 200 and client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").text  # BentoML counts the mounted app's requests too
    assert re.search(
        r'bentoml_service_request_total\{endpoint="/predict",http_response_code="200"[^}]*\} [1-9]', metrics
    )
