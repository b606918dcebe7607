"""The Open Inference Protocol (KServe v2) on the real server: health and metadata shapes, JSON and
binary-extension inference round trips that match the in-process backend, and malformed requests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onepass.serve.kserve import HEADER_LENGTH, parse_response
from tests.serve.samples import scene

NAME = "onepass-default"


@pytest.fixture(scope="module")
def batch(predictor) -> np.ndarray:
    images = [scene(seed, 100, 140) for seed in (41, 42)]
    return predictor.preprocess(images)[0]  # (2, H, W, 3) uint8 at the model's input size


def test_health_and_metadata(client, predictor):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    server = client.get("/v2").json()
    assert server["name"] == "onepass" and "binary_tensor_data" in server["extensions"] and server["version"]
    assert client.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
    meta = client.get(f"/v2/models/{NAME}").json()
    height, width = predictor.config.input_size
    assert meta["name"] == NAME and meta["versions"] == [predictor.package.version]
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, height, width, 3]}]
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["semseg"] == {"name": "semseg", "datatype": "UINT8", "shape": [-1, height, width]}
    assert outputs["normals"]["shape"] == [-1, height, width, 3] and outputs["depth"]["datatype"] == "FP32"
    people = predictor.package.config.task("people")
    assert outputs["people_boxes"] == {"name": "people_boxes", "datatype": "FP32", "shape": [-1, people.max_people, 4]}
    assert outputs["people_age_group"]["shape"] == [-1, people.max_people, len(people.attributes["age_group"])]
    assert outputs["people_count"] == {"name": "people_count", "datatype": "INT64", "shape": [-1]}
    versioned = client.get(f"/v2/models/{NAME}/versions/{predictor.package.version}").json()
    assert versioned == meta
    missing = client.get("/v2/models/resnet50")
    assert missing.status_code == 404 and "onepass-default" in missing.json()["error"]


def _assert_matches(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]):
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        assert outputs[name].dtype == value.dtype and outputs[name].shape == value.shape
        if value.dtype == np.uint8:
            assert (outputs[name] == value).mean() > 0.999
        else:
            np.testing.assert_allclose(outputs[name], value, atol=1e-4, rtol=1e-4)


def test_json_inference_round_trip(client, predictor, batch):
    body = {
        "id": "req-1",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": list(batch.shape), "data": batch.ravel().tolist()}],
    }
    response = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model_name"] == NAME and payload["id"] == "req-1"
    assert payload["model_version"] == predictor.package.version
    _assert_matches(parse_response(response.content, None), predictor.backend.run(batch))


def test_binary_inference_round_trip(client, predictor, batch):
    # what tritonclient sends by default: binary input, binary outputs
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "UINT8",
                    "shape": list(batch.shape),
                    "parameters": {"binary_data_size": batch.nbytes},
                }
            ],
            "outputs": [
                {"name": "depth", "parameters": {"binary_data": True}},
                {"name": "people_looking", "parameters": {"binary_data": False}},
            ],
        }
    ).encode()
    response = client.post(
        f"/v2/models/{NAME}/infer",
        content=header + batch.tobytes(),
        headers={HEADER_LENGTH: str(len(header)), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER_LENGTH])
    outputs = parse_response(response.content, length)
    expected = predictor.backend.run(batch)
    _assert_matches(outputs, {"depth": expected["depth"], "people_looking": expected["people_looking"]})
    assert json.loads(response.content[:length])["outputs"][1]["data"]  # the non-binary one travels as JSON


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"datatype": "FP32"}, "datatype UINT8"),
        ({"shape": [1, 64, 64, 3]}, "must have shape"),
        ({"name": "input_1"}, "one input, 'image'"),
        ({"data": [1, 2, 3]}, "needs"),
    ],
    ids=["wrong datatype", "wrong shape", "wrong input name", "data does not match shape"],
)
def test_malformed_requests_are_400_and_the_server_keeps_serving(client, predictor, change, words):
    height, width = predictor.config.input_size
    tensor = {"name": "image", "datatype": "UINT8", "shape": [1, height, width, 3], "data": [0] * (height * width * 3)}
    response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": [{**tensor, **change}]})
    assert response.status_code == 400 and words in response.json()["error"]
    response = client.post(f"/v2/models/{NAME}/infer", content=b"{oops", headers={HEADER_LENGTH: "x"})
    assert response.status_code == 400 and "integer" in response.json()["error"]
    assert client.get("/v2/health/ready").status_code == 200


def test_deeply_nested_json_is_a_400_not_a_500(client):
    body = b"[" * 100_000 + b"]" * 100_000
    response = client.post(f"/v2/models/{NAME}/infer", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]


def test_binary_data_must_be_a_json_boolean(client, predictor):
    height, width = predictor.config.input_size
    tensor = {"name": "image", "datatype": "UINT8", "shape": [1, height, width, 3], "data": [0] * (height * width * 3)}
    outputs = [{"name": "depth", "parameters": {"binary_data": "false"}}]
    response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": [tensor], "outputs": outputs})
    assert response.status_code == 400 and "must be true or false" in response.json()["error"]
