"""The exported graph's output contract, checked on every ONNX file of every precision: the shipped
default model's (model.onnx and model.int8.onnx as shipped, model.fp16.onnx converted from the
shipped model.onnx) and a tiny model's, on random frames, synthetic scenes and uniform frames.

Whatever the precision: each output has its spec's dtype and shape, class ids name a class, depth
is finite and positive, normals are unit vectors, and each attribute group's probabilities lie in
[0, 1] and sum to 1. Post-processing runs in fp32 in the int8 graph, so fp32 and int8 meet fp32
tolerances; the fp16 graph computes normals and probabilities in fp16 (11 significant bits)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from onepass.data.synth import render_scene
from onepass.export.fp16 import export_fp16
from onepass.export.parity import onnx_runner
from onepass.models import open_package
from onepass.models.package import default_package_path
from onepass.models.package_exports import ONNX_FILES

UNIT_TOLERANCE = {"fp32": 1e-5, "int8": 1e-5, "fp16": 2e-3}  # fp16: measured 7.2e-4 on the shipped model
SUM_TOLERANCE = {"fp32": 1e-5, "int8": 1e-5, "fp16": 2e-3}


@pytest.fixture(scope="module")
def packages(tmp_path_factory, exported_tiny_package):
    """name -> package directory holding all three precisions; the shipped files are used as shipped."""
    shipped = tmp_path_factory.mktemp("default") / "pkg"
    shutil.copytree(default_package_path(), shipped)
    assert {"model.onnx", "model.int8.onnx"} <= {p.name for p in shipped.iterdir()}  # shipped, not re-made here
    export_fp16(open_package(shipped))
    return {"default": shipped, "tiny": exported_tiny_package}


def frames(kind: str, height: int, width: int) -> np.ndarray:
    if kind == "random":
        return np.random.default_rng(11).integers(0, 256, (12, height, width, 3), dtype=np.uint8)
    if kind == "synthetic":
        return np.stack([render_scene(np.random.default_rng([77, i]), height, width).image for i in range(8)])
    return np.stack([np.full((height, width, 3), value, np.uint8) for value in (0, 128, 255)])  # uniform


@pytest.mark.parametrize("frames_kind", ["random", "synthetic", "uniform"])
@pytest.mark.parametrize("precision", list(ONNX_FILES))
@pytest.mark.parametrize("model", ["default", "tiny"])
def test_every_precision_keeps_the_output_contract(packages, model, precision, frames_kind):
    package = open_package(packages[model])
    height, width = package.config.input_size
    images = frames(frames_kind, height, width)
    outputs = onnx_runner(package.path / ONNX_FILES[precision])(images)
    specs = [spec for task in package.config.tasks for spec in task.output_specs()]
    assert list(outputs) == [spec.name for spec in specs]
    for spec in specs:
        value = outputs[spec.name]
        expected = tuple(
            len(images) if d == "N" else height if d == "H" else width if d == "W" else d for d in spec.shape
        )
        assert (value.dtype.name, value.shape) == (spec.dtype, expected), spec.name
    classes = len(package.config.task("semseg").classes)
    assert int(outputs["semseg"].max()) < classes
    assert np.isfinite(outputs["depth"]).all() and (outputs["depth"] > 0).all()
    length = np.linalg.norm(outputs["normals"].astype(np.float64), axis=-1)
    worst = np.abs(length - 1.0).max()
    assert worst <= UNIT_TOLERANCE[precision], f"{(np.abs(length - 1) > 1e-3).mean():.4%} of normals are not unit"
    for name in (spec.name for spec in specs if spec.name.startswith("attr_")):
        probabilities = outputs[name].astype(np.float64)
        assert ((probabilities >= 0) & (probabilities <= 1)).all(), name
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=SUM_TOLERANCE[precision], rtol=0)
