"""Shared fixtures (helpers live in tests/tiny.py)."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import write_random_dataset


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture
def random_dataset(tmp_path):
    return write_random_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def exported_tiny_package(tmp_path_factory):
    """A tiny random model package with model.onnx, model.fp16.onnx and model.int8.onnx, exported once."""
    from onepass.export.fp16 import export_fp16
    from onepass.export.int8 import export_int8
    from onepass.export.onnx import export_onnx
    from onepass.models import MultiTaskModel, open_package, save_package
    from tests.tiny import tiny_config

    path = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    save_package(path, MultiTaskModel(tiny_config()).eval(), "tiny")
    package = open_package(path)
    export_onnx(package)
    export_fp16(package)
    export_int8(package, write_random_dataset(tmp_path_factory.mktemp("calib") / "data") / "images")
    return path
