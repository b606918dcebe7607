"""fp16 and int8 ONNX exports: what they contain, that they run, and what they cost in task metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onepass.cli import main
from onepass.export.int8 import calibration_images
from onepass.export.onnx import ExportError, read_metadata
from onepass.export.parity import onnx_runner
from onepass.export.quality import folder_examples, graph_metrics, held_out_scenes, precision_metrics
from onepass.models import open_package
from onepass.models.package import default_package_path
from tests.tiny import CLASSES, PERSON_ATTRIBUTES


def _float_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The graph's floating-point initializers (weights, biases, constants) by name."""
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {name: array for name, array in arrays.items() if array.dtype.kind == "f"}


def test_fp16_keeps_fp32_outputs_and_halves_the_weights(exported_tiny_package):
    fp32 = onnx.load(str(exported_tiny_package / "model.onnx"))
    fp16 = onnx.load(str(exported_tiny_package / "model.fp16.onnx"))
    outputs = {o.name: o.type.tensor_type.elem_type for o in fp16.graph.output}
    assert outputs == {o.name: o.type.tensor_type.elem_type for o in fp32.graph.output}  # same I/O for consumers
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    full, half = _float_weights(fp32), _float_weights(fp16)
    assert set(half) == set(full)
    assert {a.dtype.name for a in full.values()} == {"float32"} and {a.dtype.name for a in half.values()} == {"float16"}
    assert sum(a.nbytes for a in half.values()) * 2 == sum(a.nbytes for a in full.values())
    for name, weights in full.items():  # each weight is its fp32 value rounded to fp16 (the converter clamps
        # magnitudes below fp16's smallest subnormal, 6e-8, up to it rather than to zero)
        np.testing.assert_allclose(half[name].astype(np.float32), weights, rtol=2**-11, atol=6e-8, err_msg=name)
    assert read_metadata(exported_tiny_package / "model.fp16.onnx") == read_metadata(
        exported_tiny_package / "model.onnx"
    )


def post_processing(model: onnx.ModelProto, output: str) -> list[onnx.NodeProto]:
    """The nodes between the network body and a graph output: from the output back to the first
    DequantizeLinear on every path (the last quantised tensor), or to the graph's inputs."""
    produced_by = {out: node for node in model.graph.node for out in node.output}
    nodes, stack, seen = [], [output], set()
    while stack:
        node = produced_by.get(stack.pop())
        if node is None or node.op_type == "DequantizeLinear" or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(node.input)
    return nodes


# each output's post-processing op (Task.postprocess): it must run on dequantised fp32 values; every
# people output is read at the peaks that TopK picks, and the boxes are decoded after it
POST_PROCESSING_OPS = {"semseg": "ArgMax", "depth": "Softplus", "normals": "ReduceL2", "attr_": "Softmax"}
POST_PROCESSING_OPS |= {"people_boxes": "Exp", "people_": "TopK"}


@pytest.fixture(scope="module")
def people_int8_package(tmp_path_factory):
    """A tiny semseg + people model, exported to int8 (calibrated on synthetic scenes)."""
    from onepass.export.int8 import export_int8
    from onepass.models import MultiTaskModel, save_package
    from onepass.models.tasks import PeopleTask, SemsegTask
    from tests.tiny import tiny_config

    path = tmp_path_factory.mktemp("people-int8")
    tasks = (SemsegTask(CLASSES), PeopleTask(PERSON_ATTRIBUTES, max_people=8))
    save_package(path, MultiTaskModel(tiny_config(tasks=tasks)).eval(), "tiny-people")
    export_int8(open_package(path))
    return path


@pytest.mark.parametrize("model_dir", ["tiny", "tiny-people", "default"])
def test_int8_is_qdq_with_fp32_post_processing_and_keeps_the_metadata(request, exported_tiny_package, model_dir):
    folders = {"tiny": exported_tiny_package, "default": default_package_path()}
    folder = folders.get(model_dir) or request.getfixturevalue("people_int8_package")
    path = folder / "model.int8.onnx"
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    for output in (o.name for o in model.graph.output):
        region = post_processing(model, output)
        expected = next(op for prefix, op in POST_PROCESSING_OPS.items() if output.startswith(prefix))
        assert expected in [n.op_type for n in region], (output, [n.op_type for n in region])
        assert "QuantizeLinear" not in [n.op_type for n in region], output  # nothing re-quantised after it
        # the walk stopped at the body's last DequantizeLinear (the people's box decoding alone is 47 nodes;
        # with the overlap suppression the default model has, 96 for the boxes and 110 for the yaw); a
        # convolution on the way is one the export kept in fp32 (each head's last, by default): its weight
        # is a float initializer, not a DequantizeLinear's output
        assert len(region) < 150, output
        initializers = {i.name for i in model.graph.initializer}
        convolutions = [n for n in region if n.op_type == "Conv"]
        assert all(n.input[1] in initializers for n in convolutions), output
    assert read_metadata(path)["name"] == open_package(folder).name


@pytest.mark.parametrize("file", ["model.onnx", "model.fp16.onnx", "model.int8.onnx"])
def test_every_precision_runs_at_batch_1_3_8(exported_tiny_package, file):
    run = onnx_runner(exported_tiny_package / file)
    for batch in (1, 3, 8):
        outputs = run(np.zeros((batch, 64, 96, 3), np.uint8))
        assert outputs["semseg"].shape == (batch, 64, 96) and outputs["semseg"].dtype == np.uint8
        assert outputs["normals"].dtype == np.float32 and outputs["attr_people"].shape == (batch, 3)
        np.testing.assert_allclose(outputs["attr_people"].sum(1), 1.0, atol=1e-3)


def test_metric_costs_are_measured_on_the_same_images(exported_tiny_package, random_dataset):
    package = open_package(exported_tiny_package)
    examples = folder_examples(package, random_dataset)
    results = precision_metrics(package, exported_tiny_package / "model.int8.onnx", examples)
    assert list(results) == ["pytorch fp32", "model.int8.onnx"]
    for metrics in results.values():
        assert set(metrics) == {"semseg", "depth", "normals", "attributes"}
        assert all(math.isfinite(v) for task in metrics.values() for v in task.values())
    # the fp32 export scores exactly as PyTorch does: the scoring path itself adds no error
    fp32 = graph_metrics(package, onnx_runner(exported_tiny_package / "model.onnx"), examples)
    for task, values in fp32.items():
        for metric, value in values.items():
            assert value == pytest.approx(results["pytorch fp32"][task][metric], rel=1e-4, abs=1e-6), (task, metric)


def test_synthetic_scenes_measure_only_models_with_their_labels(exported_tiny_package):
    with pytest.raises(ExportError, match="--eval-data"):
        held_out_scenes(open_package(exported_tiny_package))
    images, targets = held_out_scenes(open_package("default"), count=3)
    assert images.shape == (3, 128, 160, 3) and targets["semseg"].shape == (3, 128, 160)


def test_calibration_images_come_from_a_folder_at_the_input_size(exported_tiny_package, random_dataset, tmp_path):
    package = open_package(exported_tiny_package)
    images = calibration_images(package, random_dataset / "images")
    assert images.shape == (8, 64, 96, 3) and images.dtype == np.uint8
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no images"):
        calibration_images(package, tmp_path / "empty")
    with pytest.raises(ExportError, match="not a directory"):
        calibration_images(package, tmp_path / "missing")


def test_cli_half_int8_reports_metrics_and_writes_exports_json(exported_tiny_package, random_dataset, tmp_path, capsys):
    import shutil

    path = tmp_path / "pkg"
    shutil.copytree(exported_tiny_package, path)
    assert main(["export", str(path), "--half", "--int8", "--calib", str(random_dataset / "images")]) == 2
    assert "give a labelled folder dataset with --eval-data" in capsys.readouterr().err  # tiny model: not synth labels
    argv = ["export", str(path), "--half", "--int8", "--calib", str(random_dataset / "images")]
    assert main([*argv, "--eval-data", str(random_dataset)]) == 0
    out = capsys.readouterr().out
    assert "task metrics on 8 images of" in out and "model.int8.onnx" in out
    report = json.loads((path / "exports.json").read_text())
    assert report["format"] == "onepass-exports" and report["version"] == 1
    assert all(check["passed"] for check in report["files"]["model.onnx"]["parity"])
    assert set(report["files"]["model.fp16.onnx"]["metrics"]) == {"semseg", "depth", "normals", "attributes"}
    assert report["files"]["model.int8.onnx"]["calibration"] == str(random_dataset / "images")
    assert report["reference"]["count"] == 8 and set(report["reference"]["pytorch fp32"]) == {
        "semseg",
        "depth",
        "normals",
        "attributes",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--int8"], "--int8 needs --calib"),
        (["--calib", "x"], "--calib is for --int8"),
        (["--half", "--out", "x.onnx"], "--out names one file"),
        (["--format", "tensorrt", "--int8"], "--int8 does not apply to --format tensorrt"),
        (["--max-batch", "4"], "--max-batch does not apply to --format onnx"),
    ],
)
def test_option_errors_are_one_clear_line(exported_tiny_package, argv, message, capsys):
    assert main(["export", str(exported_tiny_package), *argv]) == 2
    assert message in capsys.readouterr().err


def test_int8_refuses_a_graph_that_does_not_say_which_nodes_are_the_network(exported_tiny_package):
    from onepass.export.int8 import nodes_outside_network

    model = onnx.load(str(exported_tiny_package / "model.onnx"))
    outside = nodes_outside_network(model, exported_tiny_package / "model.onnx")
    ops = {n.name: n.op_type for n in model.graph.node}
    assert {"ArgMax", "Softplus", "ReduceL2", "Softmax"} <= {ops[name] for name in outside}  # post-processing
    assert "Conv" not in {ops[name] for name in outside}  # the network stays quantisable
    for node in model.graph.node:
        del node.metadata_props[:]
    with pytest.raises(ExportError, match="export model.onnx again"):
        nodes_outside_network(model, exported_tiny_package / "model.onnx")
