"""KServe v2 bodies: JSON and binary tensor forms parse and round-trip; malformed ones say what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onepass.serve import kserve
from onepass.serve.kserve import InferenceRequestError, build_response, parse_request, parse_response

SIZE = (4, 5)
OUTPUTS = ["semseg", "depth"]


def image(n: int = 2) -> np.ndarray:
    return np.arange(n * SIZE[0] * SIZE[1] * 3, dtype=np.int64).reshape(n, *SIZE, 3).astype(np.uint8)


def json_request(data: np.ndarray, **extra) -> bytes:
    tensor = {"name": "image", "datatype": "UINT8", "shape": list(data.shape), "data": data.ravel().tolist()}
    return json.dumps({"inputs": [tensor], **extra}).encode()


def binary_request(data: np.ndarray, **extra) -> tuple[bytes, str]:
    tensor = {
        "name": "image",
        "datatype": "UINT8",
        "shape": list(data.shape),
        "parameters": {"binary_data_size": data.nbytes},
    }
    header = json.dumps({"inputs": [tensor], **extra}).encode()
    return header + data.tobytes(), str(len(header))


def test_json_request_parses_flat_and_nested_data():
    data = image()
    parsed = parse_request(json_request(data, id="a1"), None, SIZE, OUTPUTS)
    np.testing.assert_array_equal(parsed.image, data)
    assert parsed.id == "a1"
    assert [(o.name, o.binary) for o in parsed.outputs] == [("semseg", False), ("depth", False)]
    nested = json.dumps(
        {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [2, 4, 5, 3], "data": data.tolist()}]}
    )
    np.testing.assert_array_equal(parse_request(nested.encode(), None, SIZE, OUTPUTS).image, data)


def test_binary_request_and_binary_outputs_round_trip():
    data = image(3)
    body, length = binary_request(
        data, outputs=[{"name": "depth", "parameters": {"binary_data": True}}, {"name": "semseg"}]
    )
    parsed = parse_request(body, length, SIZE, OUTPUTS)
    np.testing.assert_array_equal(parsed.image, data)
    outputs = {"semseg": data[..., 0], "depth": data[..., 1].astype(np.float32) / 7}
    content, json_length = build_response("m", "1", parsed, outputs)
    assert json_length is not None
    header = json.loads(content[:json_length])
    assert header["outputs"][0] == {
        "name": "depth",
        "datatype": "FP32",
        "shape": [3, 4, 5],
        "parameters": {"binary_data_size": 3 * 4 * 5 * 4},
    }
    assert header["outputs"][1]["datatype"] == "UINT8" and "data" in header["outputs"][1]
    decoded = parse_response(content, json_length)
    np.testing.assert_array_equal(decoded["depth"], outputs["depth"])
    np.testing.assert_array_equal(decoded["semseg"], outputs["semseg"])


def test_binary_data_output_parameter_makes_every_output_binary():
    parsed = parse_request(json_request(image(), parameters={"binary_data_output": True}), None, SIZE, OUTPUTS)
    assert all(o.binary for o in parsed.outputs)


def test_metadata_follows_the_spec():
    from onepass.models.tasks.base import OutputSpec

    meta = kserve.model_metadata("m", "3", (4, 5), [OutputSpec("semseg", "uint8", ("N", "H", "W"))])
    assert meta == {
        "name": "m",
        "versions": ["3"],
        "platform": "onepass",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 4, 5, 3]}],
        "outputs": [{"name": "semseg", "datatype": "UINT8", "shape": [-1, 4, 5]}],
    }


def _tensor(**changes) -> bytes:
    tensor = {"name": "image", "datatype": "UINT8", "shape": [1, 4, 5, 3], "data": [0] * 60, **changes}
    return json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"inputs": []}', None, "'inputs' list"),
        (_tensor(name="input_0"), None, "one input, 'image'"),
        (_tensor(datatype="FP32"), None, "datatype UINT8, got 'FP32'"),
        (_tensor(shape=[1, 5, 4, 3]), None, r"shape \[N, 4, 5, 3\]"),
        (_tensor(shape=[0, 4, 5, 3], data=[]), None, "N >= 1"),
        (_tensor(data=[0] * 59), None, "needs 60 integers"),
        (_tensor(data=[300] * 60), None, "0..255"),
        (_tensor(data=["a"] * 60), None, "needs 60 integers"),
        (_tensor(data=[[0, 1], [2]]), None, "list of numbers"),
        (_tensor(parameters={"binary_data_size": 60}), "100000", "Inference-Header-Content-Length is 100000"),
        (_tensor(parameters={"binary_data_size": 60}), None, "binary_data_size is 60"),
        (_tensor(), "abc", "must be an integer"),
        (
            json.dumps({"inputs": [json.loads(_tensor())["inputs"][0]], "outputs": [{"name": "dept"}]}).encode(),
            None,
            "unknown output 'dept'",
        ),
    ],
    ids=[
        "bad json",
        "not an object",
        "no inputs",
        "wrong input name",
        "wrong datatype",
        "wrong shape",
        "empty batch",
        "data does not match shape",
        "out of range",
        "strings",
        "ragged",
        "header length past the body",
        "binary size without data",
        "header length not a number",
        "unknown output",
    ],
)
def test_malformed_requests_say_what_is_wrong(body, header, message):
    with pytest.raises(InferenceRequestError, match=message):
        parse_request(body, header, SIZE, OUTPUTS)
