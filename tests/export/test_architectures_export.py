"""Every architecture exports to ONNX with parity and predicts through it (the default one is covered by
test_onnx.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import onepass
from onepass.export.onnx import export_onnx
from onepass.export.parity import onnx_parity
from onepass.models import ARCHITECTURES, MultiTaskModel, open_package, save_package
from tests.tiny import every_task_type, tiny_config


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(set(ARCHITECTURES) - {"shared-fpn"}))
def test_architecture_exports_with_parity(tmp_path, architecture):
    torch.manual_seed(0)
    save_package(tmp_path, MultiTaskModel(tiny_config(architecture, tasks=every_task_type())).eval(), "tiny")
    package = open_package(tmp_path)
    checks = onnx_parity(package, export_onnx(package))
    assert {c.output for c in checks} == {s.name for t in package.config.tasks for s in t.output_specs()}
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    frame = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)  # not the input size
    (result,) = onepass.load(tmp_path, backend="onnxruntime").predict(frame)
    assert set(result) == {t.name for t in package.config.tasks}
    assert result["depth"].shape == (90, 120) and result["semseg"].shape == (90, 120)


@pytest.mark.slow
@pytest.mark.parametrize(
    "heads", [{"head_convolution": "separable"}, {"head_convolution": "separable", "head_stride": 2}], ids=str
)
def test_lighter_heads_export_with_parity(tmp_path, heads):
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(tasks=every_task_type()), **heads)
    save_package(tmp_path, MultiTaskModel(config).eval(), "tiny")
    package = open_package(tmp_path)
    assert package.config == config
    failed = [c for c in onnx_parity(package, export_onnx(package)) if not c.passed]
    assert not failed, failed
