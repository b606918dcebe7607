"""The Open Inference Protocol (KServe v2) over the exported graph's raw tensor interface.

Request and response bodies only (plain Python + numpy, no HTTP; the endpoints are
serve/kserve_routes.py): the JSON tensor form, and the binary tensor data extension, where the JSON
header is followed by raw little-endian tensor bytes and `Inference-Header-Content-Length` gives the
JSON header's length.
https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onepass.models.tasks.base import OutputSpec

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT_NAME = "image"
DATATYPES = {"uint8": "UINT8", "float32": "FP32", "int64": "INT64", "bool": "BOOL"}
NUMPY_TYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class InferenceRequestError(ValueError):
    """A malformed v2 request; the message says which field is wrong and what was expected."""


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferenceRequest:
    id: str | None
    image: np.ndarray  # (N, H, W, 3) uint8
    outputs: tuple[RequestedOutput, ...]


def tensor_metadata(name: str, dtype: str, shape: Sequence[str | int], sizes: Mapping[str, int]) -> dict[str, Any]:
    """One tensor's metadata; symbolic dimensions become their fixed size, or -1 (the batch)."""
    return {
        "name": name,
        "datatype": DATATYPES[dtype],
        "shape": [d if isinstance(d, int) else sizes.get(d, -1) for d in shape],
    }


def model_metadata(
    name: str, version: str, input_size: tuple[int, int], outputs: Sequence[OutputSpec]
) -> dict[str, Any]:
    sizes = {"H": input_size[0], "W": input_size[1]}
    return {
        "name": name,
        "versions": [version],
        "platform": "onepass",
        "inputs": [tensor_metadata(INPUT_NAME, "uint8", ("N", "H", "W", 3), sizes)],
        "outputs": [tensor_metadata(o.name, o.dtype, o.shape, sizes) for o in outputs],
    }


def parse_request(
    body: bytes, header_length: str | None, input_size: tuple[int, int], output_names: Sequence[str]
) -> InferenceRequest:
    """Validate a v2 infer request body against the model's one input and its outputs."""
    if header_length is not None:
        try:
            json_length = int(header_length)
        except ValueError:
            raise InferenceRequestError(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 < json_length <= len(body):
            raise InferenceRequestError(
                f"{HEADER_LENGTH} is {json_length}, but the body has {len(body)} bytes; it must give the JSON header's length"
            )
        header, binary = body[:json_length], memoryview(body)[json_length:]
    else:
        header, binary = body, memoryview(b"")
    try:
        request = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        hint = "" if header_length else f" (binary tensor data needs the {HEADER_LENGTH} header)"
        raise InferenceRequestError(f"the request is not valid JSON: {error}{hint}") from None
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise InferenceRequestError(
            "the request's JSON is nested too deeply; send 'data' as a flat list (or as binary tensor data)"
        ) from None
    if not isinstance(request, dict):
        raise InferenceRequestError("the request must be a JSON object with an 'inputs' list")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InferenceRequestError("the request needs an 'inputs' list with one tensor, 'image'")
    names = [i.get("name") if isinstance(i, dict) else None for i in inputs]
    if names != [INPUT_NAME]:
        raise InferenceRequestError(f"the model has one input, {INPUT_NAME!r} (UINT8 [N, H, W, 3]); got inputs {names}")
    image = _input_tensor(inputs[0], binary, input_size)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferenceRequestError(f"'id' must be a string, got {_shown(request_id)}")
    return InferenceRequest(request_id, image, _requested_outputs(request, output_names))


def _input_tensor(tensor: dict[str, Any], binary: memoryview, input_size: tuple[int, int]) -> np.ndarray:
    height, width = input_size
    datatype = tensor.get("datatype")
    if datatype != "UINT8":
        raise InferenceRequestError(f"input {INPUT_NAME!r} must have datatype UINT8, got {datatype!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[0] < 1
        or shape[1:] != [height, width, 3]
    ):
        raise InferenceRequestError(
            f"input {INPUT_NAME!r} must have shape [N, {height}, {width}, 3] (N >= 1: RGB images at the model's "
            f"input size, NHWC), got {shape!r}"
        )
    count = int(np.prod(shape))
    parameters = _parameters(tensor, f"input {INPUT_NAME!r}")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if isinstance(size, bool) or size != count or size != len(binary):
            raise InferenceRequestError(
                f"input {INPUT_NAME!r}: shape {shape} needs {count} bytes of UINT8 data; binary_data_size is {size!r} "
                f"and the body carries {len(binary)} bytes after the JSON header"
            )
        return np.frombuffer(binary, np.uint8).reshape(shape)
    if len(binary):
        raise InferenceRequestError(
            f"the body has {len(binary)} bytes of binary data but no input declares binary_data_size"
        )
    if "data" not in tensor:
        raise InferenceRequestError(f"input {INPUT_NAME!r} needs 'data' (or parameters.binary_data_size)")
    try:
        values = np.asarray(tensor["data"])
    except ValueError:
        raise InferenceRequestError(
            f"input {INPUT_NAME!r}: 'data' must be a (flat or nested) list of numbers"
        ) from None
    if values.dtype.kind not in "iu" or values.size != count:
        raise InferenceRequestError(
            f"input {INPUT_NAME!r}: shape {shape} needs {count} integers in 'data', got {values.size} "
            f"value(s) of type {values.dtype.name if values.dtype.kind in 'iufb' else 'non-number'}"
        )
    if values.min() < 0 or values.max() > 255:
        raise InferenceRequestError(f"input {INPUT_NAME!r}: UINT8 data must lie in 0..255")
    return values.astype(np.uint8).reshape(shape)


def _requested_outputs(request: dict[str, Any], output_names: Sequence[str]) -> tuple[RequestedOutput, ...]:
    parameters = _parameters(request, "the request")
    binary_default = _protocol_bool(parameters.get("binary_data_output", False), "parameters.binary_data_output")
    wanted = request.get("outputs")
    if wanted is None:
        return tuple(RequestedOutput(n, binary_default) for n in output_names)
    if not isinstance(wanted, list):
        raise InferenceRequestError("'outputs' must be a list of {'name': ...} objects")
    chosen = []
    for item in wanted:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in output_names:
            raise InferenceRequestError(f"unknown output {name!r} (the model's outputs: {', '.join(output_names)})")
        item_parameters = _parameters(item, f"output {name!r}")
        binary = _protocol_bool(
            item_parameters.get("binary_data", binary_default), f"output {name!r}: parameters.binary_data"
        )
        chosen.append(RequestedOutput(name, binary))
    return tuple(chosen)


def _parameters(item: dict[str, Any], what: str) -> dict[str, Any]:
    """An object's optional 'parameters' (the protocol's $parameters: an object of name -> value)."""
    parameters = item.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InferenceRequestError(f"{what}: 'parameters' must be an object, got {_shown(parameters)}")
    return parameters


def _protocol_bool(value: Any, what: str) -> bool:
    """A parameter the protocol defines as a bool: JSON true or false. Anything else is refused rather
    than guessed at (Python would take the string "false" for true)."""
    if not isinstance(value, bool):
        raise InferenceRequestError(f"{what} must be true or false (a JSON boolean), got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A client's JSON value for an error message, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_response(
    model_name: str, model_version: str, request: InferenceRequest, outputs: Mapping[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary tensors follow it (else None)."""
    tensors, blobs = [], []
    for wanted in request.outputs:
        array = np.ascontiguousarray(outputs[wanted.name])
        tensor: dict[str, Any] = {
            "name": wanted.name,
            "datatype": DATATYPES[array.dtype.name],
            "shape": list(array.shape),
        }
        if wanted.binary:
            data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def parse_response(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """A v2 response body -> output name -> array (what a client does; used by tests and the benchmark)."""
    header = body[:header_length] if header_length is not None else body
    response = json.loads(header)
    offset = header_length or 0
    arrays = {}
    for tensor in response["outputs"]:
        dtype = NUMPY_TYPES[tensor["datatype"]]
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arrays[tensor["name"]] = np.frombuffer(body[offset : offset + size], dtype).reshape(tensor["shape"])
            offset += size
        else:
            arrays[tensor["name"]] = np.asarray(tensor["data"], dtype).reshape(tensor["shape"])
    return arrays
