"""ONNX export: checker, per-head parity with PyTorch, a numpy + onnxruntime-only consumer,
dynamic batch, and clear errors that leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest
import torch

from onepass.cli import main
from onepass.export.onnx import ExportError, export_onnx, output_names, read_metadata
from onepass.export.parity import onnx_parity
from onepass.models import MultiTaskModel, open_package, save_package
from tests.tiny import tiny_config


@pytest.fixture(scope="module")
def exported(exported_tiny_package):
    return open_package(exported_tiny_package), exported_tiny_package / "model.onnx"


def test_checker_passes_and_outputs_are_named_per_task(exported):
    package, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == output_names(package)
    assert read_metadata(path)["model"] == package.config.to_json()


def test_parity_with_pytorch_per_head(exported):
    package, path = exported
    checks = onnx_parity(package, path)
    assert {c.output for c in checks} == set(output_names(package))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]


CONSUMER = """
import json, sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = json.loads(session.get_modelmeta().custom_metadata_map["onepass.json"])
height, width = meta["model"]["input_size"]
shapes = {}
for batch in (1, 3, 8):
    outputs = session.run(None, {"image": np.zeros((batch, height, width, 3), np.uint8)})
    shapes[batch] = {o.name: list(v.shape) for o, v in zip(session.get_outputs(), outputs)}
print(json.dumps({"classes": meta["model"]["tasks"][0]["classes"], "shapes": shapes,
                  "modules": sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("torch", "onepass"))}))
"""


def test_runs_with_onnxruntime_and_numpy_only_at_any_batch(exported):
    _, path = exported
    result = subprocess.run([sys.executable, "-c", CONSUMER, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["modules"] == [] and report["classes"] == ["floor", "wall", "person"]
    for batch in ("1", "3", "8"):
        shapes = report["shapes"][batch]
        assert shapes["semseg"] == [int(batch), 64, 96] and shapes["normals"] == [int(batch), 64, 96, 3]
        assert shapes["attr_people"] == [int(batch), 3]


def test_missing_weights_unknown_format_and_unwritable_output(tmp_path, capsys):
    torch.manual_seed(0)
    save_package(tmp_path / "pkg", MultiTaskModel(tiny_config()).eval(), "tiny")
    assert main(["export", str(tmp_path / "pkg"), "--format", "onxx"]) == 2
    assert "did you mean 'onnx'" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "pkg"), "--out", "/nonexistent/dir/model.onnx"]) == 2
    assert "not a writable directory" in capsys.readouterr().err
    (tmp_path / "pkg" / "weights.safetensors").unlink()
    assert main(["export", str(tmp_path / "pkg")]) == 2
    assert "weights.safetensors: missing" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == ["onepass.json"]  # nothing half-written


def test_failed_check_leaves_no_file(tmp_path, monkeypatch, exported):
    package, _ = exported

    def broken(*args, **kwargs):
        raise onnx.checker.ValidationError("simulated")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(ExportError, match="failed its checks"):
        export_onnx(package, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_dynamic_size_export_runs_at_other_sizes(exported, tmp_path):
    import numpy as np
    import onnxruntime

    package, _ = exported
    path = export_onnx(package, tmp_path / "dynamic.onnx", dynamic_size=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((1, 96, 128, 3), (2, 128, 64, 3)):
        semseg, depth = session.run(["semseg", "depth"], {"image": np.zeros(shape, np.uint8)})
        assert semseg.shape == depth.shape == shape[:3]


def test_the_frame_size_export_resizes_in_the_graph_and_is_checked(frame_tiny_package):
    """model.frame.onnx: any frame size in (Resize with antialias, opset 18), maps at that size out, its
    per-head parity against PyTorch's FrameGraph recorded in exports.json."""
    path = frame_tiny_package / "model.frame.onnx"
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == output_names(open_package(frame_tiny_package))
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert any(a.name == "antialias" and a.i == 1 for n in resizes for a in n.attribute)
    report = json.loads((frame_tiny_package / "exports.json").read_text())["files"]["model.frame.onnx"]
    assert report["parity"] and all(check["passed"] for check in report["parity"])
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for height, width in ((37, 53), (150, 203)):
        outputs = dict(zip(names, session.run(None, {"image": np.zeros((2, height, width, 3), np.uint8)}), strict=True))
        assert outputs["semseg"].shape == (2, height, width) and outputs["normals"].shape == (2, height, width, 3)
        assert outputs["attr_people"].shape == (2, 3)


def test_frame_parity_checks_the_graphs_own_resize_then_continues_from_it(frame_tiny_package, monkeypatch):
    """The frame graph's input resize, run alone from its ONNX file, is PyTorch's within a grey level (its
    own check, first); the outputs are then compared with PyTorch continuing from that same resized input,
    so a tie rounded the other way on this CPU cannot fail the fp32 limits. A resize that differs by more
    fails its check."""
    import numpy as np

    from onepass.export.parity import frame_parity, frame_parity_size, onnx_resized_frames, onnx_runner, parity_images
    from onepass.models.inference_graph import frame_to_input

    package = open_package(frame_tiny_package)
    path = frame_tiny_package / "model.frame.onnx"
    images = parity_images(package, size=frame_parity_size(package))
    resized = onnx_resized_frames(path, images)
    assert resized.shape == (len(images), 3, *package.config.input_size)
    own = frame_to_input(torch.from_numpy(images), package.config.input_size).numpy()
    assert np.abs(own - resized).max() <= 1.0 and np.mean(own == resized) > 0.99
    checks = frame_parity(package, onnx_runner(path), path)
    assert (checks[0].output, checks[0].passed) == ("image", True) and all(c.passed for c in checks)
    report = json.loads((frame_tiny_package / "exports.json").read_text())["files"]["model.frame.onnx"]
    assert report["parity"][0]["output"] == "image"  # `onepass export --frame` records it

    import onepass.export.parity as parity_module

    original = parity_module.onnx_resized_frames
    monkeypatch.setattr(parity_module, "onnx_resized_frames", lambda p, i: original(p, i) + 3.0)  # 3 levels off
    failed = frame_parity(package, onnx_runner(path), path)
    assert failed[0].output == "image" and failed[0].value >= 3.0 and not failed[0].passed


def test_frame_export_options_are_checked(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--frame", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "--frame write" in capsys.readouterr().err


def test_head_attributes_export_with_parity_and_are_read_at_the_head_cell_in_the_graph(tmp_path):
    """A people task reading looking and yaw at the head cell: the graph agrees with PyTorch, and not
    with the same weights read at the centre (so the head cell is what the graph reads)."""
    import dataclasses

    from onepass.export.parity import onnx_runner, parity
    from onepass.models.tasks import PeopleTask
    from tests.tiny import PERSON_ATTRIBUTES

    # a threshold under the heatmap's prior, so that every peak is a person the parity checks
    people = PeopleTask(PERSON_ATTRIBUTES, max_people=8, score_threshold=0.01, head_attributes=("looking", "yaw"))
    torch.manual_seed(0)
    save_package(tmp_path, MultiTaskModel(tiny_config(tasks=(people,))).eval(), "tiny")
    package = open_package(tmp_path)
    assert package.config.tasks[0].head_attributes == ("looking", "yaw")
    path = export_onnx(package)
    checks = onnx_parity(package, path)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    centre = dataclasses.replace(people, head_attributes=())
    at_centre = dataclasses.replace(package, config=dataclasses.replace(package.config, tasks=(centre,)))
    failed = {c.output for c in parity(at_centre, onnx_runner(path)) if not c.passed}
    assert "people_yaw" in failed and "people_boxes" not in failed and "people_gender" not in failed
