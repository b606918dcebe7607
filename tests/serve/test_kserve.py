"""KServe v2 bodies: JSON and binary tensor forms parse and round-trip; malformed ones say what is wrong."""

from __future__ import annotations

import json
import struct

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


def test_binary_data_false_per_output_overrides_binary_data_output():
    body = json_request(
        image(),
        parameters={"binary_data_output": True},
        outputs=[{"name": "depth", "parameters": {"binary_data": False}}, {"name": "semseg"}],
    )
    assert [(o.name, o.binary) for o in parse_request(body, None, SIZE, OUTPUTS).outputs] == [
        ("depth", False),
        ("semseg", True),
    ]


# Responses checked against bodies written out by hand from the protocol's text (not by this module):
# JSON tensors are {"name", "datatype", "shape", "data": flat row-major list}; binary tensors carry
# parameters.binary_data_size and their raw little-endian bytes follow the JSON header, in the order
# of the "outputs" list, the header's length in Inference-Header-Content-Length.


def _request(outputs: list[dict], request_id: str | None = None) -> kserve.InferenceRequest:
    body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 4, 5, 3], "data": [0] * 60}]}
    if request_id is not None:
        body["id"] = request_id
    return parse_request(json.dumps({**body, "outputs": outputs}).encode(), None, SIZE, ["semseg", "depth", "attr"])


def test_json_response_is_the_protocols_json():
    request = _request([{"name": "semseg"}, {"name": "attr"}], request_id="r7")
    outputs = {
        "semseg": np.array([[[0, 1], [2, 255]]], np.uint8),
        "attr": np.array([[0.25, 0.75]], np.float32),
        "depth": np.zeros((1, 2, 2), np.float32),  # not asked for
    }
    content, json_length = build_response("m", "3", request, outputs)
    assert json_length is None
    assert json.loads(content) == {
        "model_name": "m",
        "model_version": "3",
        "id": "r7",
        "outputs": [
            {"name": "semseg", "datatype": "UINT8", "shape": [1, 2, 2], "data": [0, 1, 2, 255]},
            {"name": "attr", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
        ],
    }


def test_several_binary_outputs_follow_the_header_in_order_at_their_offsets():
    request = _request(
        [
            {"name": "depth", "parameters": {"binary_data": True}},
            {"name": "semseg", "parameters": {"binary_data": True}},
            {"name": "attr", "parameters": {"binary_data": True}},
        ]
    )
    outputs = {
        "semseg": np.array([[[3, 1, 4]]], np.uint8),
        "depth": np.array([[[1.5, -2.0, 0.125]]], np.float32),
        "attr": np.array([[0.5, 0.25]], np.float32),
    }
    content, json_length = build_response("m", "1", request, outputs)
    header = json.loads(content[:json_length])
    assert header["outputs"] == [
        {"name": "depth", "datatype": "FP32", "shape": [1, 1, 3], "parameters": {"binary_data_size": 12}},
        {"name": "semseg", "datatype": "UINT8", "shape": [1, 1, 3], "parameters": {"binary_data_size": 3}},
        {"name": "attr", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}},
    ]
    depth, semseg, attr = struct.pack("<3f", 1.5, -2.0, 0.125), bytes([3, 1, 4]), struct.pack("<2f", 0.5, 0.25)
    assert content[json_length:] == depth + semseg + attr  # offsets 0, 12, 15; 23 bytes in all


def test_parse_response_reads_a_hand_built_binary_body():
    header = (
        b'{"model_name": "m", "outputs": ['
        b'{"name": "a", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}}, '
        b'{"name": "b", "shape": [3], "datatype": "INT64", "data": [7, 8, 9]}, '
        b'{"name": "c", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}}]}'
    )
    body = header + struct.pack("<4f", 1, 2, 3, 4) + b"\x01\x00\x01"
    arrays = parse_response(body, len(header))
    np.testing.assert_array_equal(arrays["a"], [[1, 2], [3, 4]])
    assert arrays["a"].dtype == np.float32
    np.testing.assert_array_equal(arrays["b"], [7, 8, 9])
    assert arrays["c"].tolist() == [True, False, True]


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


def _with(**fields) -> bytes:
    """A valid one-image request with these top-level fields added."""
    return json.dumps({**json.loads(_tensor()), **fields}).encode()


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
        (_with(outputs=[{"name": "depth", "parameters": {"binary_data": "false"}}]), None, 'got "false"'),
        (_with(parameters={"binary_data_output": 1}), None, "binary_data_output must be true or false"),
        (_with(outputs=[{"name": "depth", "parameters": ["binary_data"]}]), None, "'parameters' must be an object"),
        (_with(id=17), None, "'id' must be a string"),
        (_tensor(parameters={"binary_data_size": True}), None, "binary_data_size is True"),
        (b"[" * 100_000 + b"]" * 100_000, None, "nested too deeply"),
        (_tensor(data=json.loads("[" * 500 + "0" + "]" * 500)), None, "list of numbers"),
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
        "binary_data as a string",
        "binary_data_output as a number",
        "output parameters not an object",
        "id not a string",
        "binary_data_size a boolean",
        "100,000 nested brackets",
        "data nested 500 deep",
    ],
)
def test_malformed_requests_say_what_is_wrong(body, header, message):
    with pytest.raises(InferenceRequestError, match=message):
        parse_request(body, header, SIZE, OUTPUTS)
