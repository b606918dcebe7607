"""Shared fixtures (helpers live in tests/tiny.py), and the report of what this run tested: where
`onepass` was imported from, and which optional dependencies were missing (tests/optional.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import onepass
from tests import optional
from tests.tiny import write_random_dataset

CHECKOUT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.fake_cuda"]  # does nothing unless ONEPASS_TEST_FAKE_CUDA=1 (see tests/fake_cuda.py)


def pytest_report_header(config) -> str:
    where = Path(onepass.__file__).resolve().parent
    note = "this checkout" if where.is_relative_to(CHECKOUT) else "NOT this checkout: tests/test_checkout.py fails"
    return f"onepass {onepass.__version__} from {where} ({note}); CI={'true' if optional.in_ci() else 'false'}"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if optional.MISSING:
        terminalreporter.section("optional dependencies missing (tests/optional.py)")
        for reason in optional.MISSING.values():
            terminalreporter.line(reason)
        if optional.in_ci():
            terminalreporter.line("CI=true: every optional dependency must be installed, so this run fails")


def pytest_sessionfinish(session, exitstatus) -> None:
    # tests/optional.py's `has` only records what is missing; in CI that fails the whole run
    if optional.in_ci() and optional.MISSING and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture(scope="session")
def frame_tiny_package(tmp_path_factory, exported_tiny_package):
    """The tiny package's weights, exported by `onepass export PKG --frame`: model.onnx and model.frame.onnx."""
    import shutil

    from onepass.cli import main

    path = tmp_path_factory.mktemp("frame") / "pkg"
    path.mkdir()
    for name in ("onepass.json", "weights.safetensors"):
        shutil.copy(exported_tiny_package / name, path / name)
    assert main(["export", str(path), "--frame"]) == 0
    return path
