"""The --int8-* options (export/int8_options.py) reach onnxruntime's quantize_static: each is checked on
the graph it produces (tiny model, 8 calibration images), recorded in exports.json, and refused with the
valid values when wrong."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onepass.cli import main
from onepass.export.formats import EXPORT_FORMATS, ExportError
from onepass.export.int8 import export_int8, nodes_outside_network, quantize_static_arguments
from onepass.export.int8_options import Int8Options
from onepass.models import open_package
from tests.tiny import write_random_dataset

SETTINGS = {
    "defaults": Int8Options(),
    "7-bit weights, activations folded, every layer int8": Int8Options(keep_fp32="none", fp32_below=0),
    "qoperator, full-range weights": Int8Options(format="qoperator", weights="int8", keep_fp32="none", fp32_below=0),
    "first, last, activations and small layers fp32": Int8Options(keep_fp32="first,last,activations", fp32_below=300),
    "uint8 weights, symmetric activations": Int8Options(weights="uint8", symmetric_activations=True),
}


@pytest.fixture(scope="module")
def int8_files(exported_tiny_package, tmp_path_factory):
    """Each of SETTINGS exported from the tiny package's model.onnx (the package itself is not changed)."""
    folder = tmp_path_factory.mktemp("int8-options")
    calib = write_random_dataset(folder / "calib") / "images"
    package = open_package(exported_tiny_package)
    return {
        name: export_int8(package, calib, folder / f"{number}.onnx", options)
        for number, (name, options) in enumerate(SETTINGS.items())
    }


def _load(files, name):
    return onnx.load(str(files[name]))


WEIGHTED = ("Conv", "MatMul", "Gemm")


def _network_layers(exported_tiny_package, ops=WEIGHTED) -> list[onnx.NodeProto]:
    """model.onnx's convolutions (and matrix products) inside the network, in graph (topological) order."""
    source = exported_tiny_package / "model.onnx"
    model = onnx.load(str(source))
    outside = set(nodes_outside_network(model, source))
    return [n for n in model.graph.node if n.op_type in ops and n.name not in outside]


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _quantised_weights(model: onnx.ModelProto) -> list[np.ndarray]:
    """The integer weights of every quantised convolution (QDQ: behind a DequantizeLinear; QOperator: in
    QLinearConv's fourth input)."""
    arrays, produced_by = _initializers(model), {t: n for n in model.graph.node for t in n.output}
    weights = []
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in produced_by:
            weights.append(arrays[produced_by[node.input[1]].input[0]])
        elif node.op_type == "QLinearConv":
            weights.append(arrays[node.input[3]])
    return weights


def test_7_bit_weights_with_the_activations_folded(int8_files, exported_tiny_package):
    model = _load(int8_files, "7-bit weights, activations folded, every layer int8")
    ops = [n.op_type for n in model.graph.node]
    assert "QLinearConv" not in ops and ops.count("Conv") == len(_network_layers(exported_tiny_package, ("Conv",)))
    weights = _quantised_weights(model)
    assert len(weights) == ops.count("Conv") and all(w.dtype == np.int8 for w in weights)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64  # reduce_range: no int16 saturation
    assert "Relu" not in ops  # folded into the convolutions' output ranges (the tiny model's 10 Relus)


def test_defaults_are_qdq_7_bit_folded_with_the_heads_last_and_the_small_layers_fp32(int8_files, exported_tiny_package):
    assert Int8Options() == Int8Options(format="qdq", weights="int7", keep_fp32="last", fp32_below=2048)
    model = _load(int8_files, "defaults")
    assert _float_layers(model) == _expected_fp32(exported_tiny_package, first=False, below=2048)
    weights = _quantised_weights(model)
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    assert "Relu" not in [n.op_type for n in model.graph.node] and "QLinearConv" not in [
        n.op_type for n in model.graph.node
    ]


def test_qoperator_writes_integer_convolutions_with_nothing_requantised_between_them(int8_files, exported_tiny_package):
    model = _load(int8_files, "qoperator, full-range weights")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QLinearConv") == len(_network_layers(exported_tiny_package, ("Conv",))) and "Conv" not in ops
    produced_by = {t: n for n in model.graph.node for t in n.output}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":  # only where an fp32 operator (SiLU, normalisation) hands on
            assert produced_by[node.input[0]].op_type not in ("DequantizeLinear", "QLinearConv"), node.name
    weights = _quantised_weights(model)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == 127  # --int8-weights int8: full range


def _expected_fp32(exported_tiny_package, first: bool, below: int) -> set[str]:
    """The network layers that should stay fp32: the first (if `first`), every last one (no weighted layer
    downstream: each head's), and those with fewer than `below` weights."""
    layers = _network_layers(exported_tiny_package)  # the attributes head ends in a matrix product
    source = onnx.load(str(exported_tiny_package / "model.onnx"))
    sizes = {name: array.size for name, array in _initializers(source).items()}
    consumers = {t: [n for n in source.graph.node if t in n.input] for n in source.graph.node for t in n.output}

    def feeds_a_layer(node, seen=None) -> bool:  # another weighted layer downstream of this one?
        seen = set() if seen is None else seen
        for tensor in node.output:
            for after in consumers.get(tensor, []):
                if after.name not in seen:
                    seen.add(after.name)
                    if after.op_type in WEIGHTED or feeds_a_layer(after, seen):
                        return True
        return False

    expected = {layers[0].name} if first else set()
    expected |= {n.name for n in layers if not feeds_a_layer(n)} | {n.name for n in layers if sizes[n.input[1]] < below}
    assert 2 < len(expected) < len(layers)
    return expected


def _float_layers(model: onnx.ModelProto) -> set[str]:
    """The weighted layers whose weight is an fp32 initializer, not a DequantizeLinear's output."""
    produced_by = {t: n for n in model.graph.node for t in n.output}
    return {n.name for n in model.graph.node if n.op_type in WEIGHTED and n.input[1] not in produced_by}


def test_kept_layers_stay_fp32_and_the_rest_is_quantised(int8_files, exported_tiny_package):
    model = _load(int8_files, "first, last, activations and small layers fp32")
    assert _float_layers(model) == _expected_fp32(exported_tiny_package, first=True, below=300)
    assert [n.op_type for n in model.graph.node].count("Relu") == 10  # "activations": Relu runs dequantised


def test_uint8_weights_and_symmetric_activations(int8_files):
    model = _load(int8_files, "uint8 weights, symmetric activations")
    assert {w.dtype.name for w in _quantised_weights(model)} == {"uint8"}
    arrays = _initializers(model)
    zero_points = [arrays[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.uint8 and int(z) == 128 for z in zero_points)
    defaults = _initializers(_load(int8_files, "defaults"))
    asymmetric = [
        defaults[n.input[2]] for n in _load(int8_files, "defaults").graph.node if n.op_type == "QuantizeLinear"
    ]
    assert any(int(z) != 128 for z in asymmetric)  # the default zero points follow each tensor's range


@pytest.mark.parametrize(
    "options, argument, value",
    [
        (Int8Options(calibration="percentile"), "calibrate_method", "Percentile"),
        (Int8Options(calibration="entropy"), "calibrate_method", "Entropy"),
        (Int8Options(), "calibrate_method", "MinMax"),
        (Int8Options(weights="int8"), "reduce_range", False),
        (Int8Options(), "reduce_range", True),
        (Int8Options(format="qoperator"), "quant_format", "QOperator"),
    ],
)
def test_each_option_is_its_quantize_static_argument(exported_tiny_package, options, argument, value):
    model = onnx.load(str(exported_tiny_package / "model.onnx"))
    arguments = quantize_static_arguments(options, model, [])
    assert getattr(arguments[argument], "name", arguments[argument]) == value


def test_the_options_are_built_from_the_flags_and_recorded_in_exports_json(exported_tiny_package, tmp_path):
    given = {"int8": True, "calib": "synth", "int8_format": "qoperator", "int8_keep_fp32": "last"}
    options = EXPORT_FORMATS["onnx"].make_options(given)
    assert options.quantisation == Int8Options(format="qoperator", keep_fp32="last")
    assert EXPORT_FORMATS["onnx"].make_options({"int8": True, "calib": "synth"}).quantisation is None  # defaults

    path = tmp_path / "pkg"
    shutil.copytree(exported_tiny_package, path)
    data = write_random_dataset(tmp_path / "data")
    argv = ["export", str(path), "--int8", "--calib", str(data / "images"), "--eval-data", str(data)]
    assert main([*argv, "--int8-weights", "int8", "--int8-fp32-below", "300"]) == 0
    entry = json.loads((path / "exports.json").read_text())["files"]["model.int8.onnx"]
    assert entry["quantisation"] == dataclasses.asdict(Int8Options(weights="int8", fp32_below=300))
    assert entry["quantisation"]["format"] == "qdq" and entry["calibration"] == str(data / "images")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--int8-format", "qdqq"], "unknown --int8-format 'qdqq'; did you mean 'qdq'? (valid: qdq, qoperator)"),
        (["--int8-calibration", "kl"], "unknown --int8-calibration 'kl' (valid: entropy, minmax, percentile)"),
        (["--int8-weights", "int4"], "unknown --int8-weights 'int4'; did you mean 'int8'? (valid: int7, int8, uint8)"),
        (
            ["--int8-keep-fp32", "first,lst"],
            "--int8-keep-fp32 first,lst: unknown layer set 'lst'; did you mean 'last'?",
        ),
        (["--int8-fp32-below", "-1"], "--int8-fp32-below -1: a number of weights, 0 or more"),
        (["--int8-fp32-below", "many"], "argument --int8-fp32-below: invalid int value: 'many'"),
    ],
)
def test_bad_values_are_one_clear_line(exported_tiny_package, argv, message, capsys):
    assert main(["export", str(exported_tiny_package), "--int8", "--calib", "synth", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2  # argparse adds its usage line


def test_int8_options_need_int8(exported_tiny_package, capsys):
    assert main(["export", str(exported_tiny_package), "--int8-weights", "int8"]) == 2
    assert "--int8-format, --int8-calibration" in capsys.readouterr().err
    with pytest.raises(ExportError, match="are for --int8$"):
        EXPORT_FORMATS["onnx"].make_options({"int8_format": "qdq"})
