"""TensorRT engines: file naming and the sidecar checks run everywhere; building and running an
engine needs TensorRT and a GPU, and those tests run unchanged where both exist."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from onepass.cli import main
from onepass.data.files import file_sha256
from onepass.export.formats import ExportError
from onepass.models import open_package
from onepass.models.package import PackageError
from onepass.models.package_exports import ENGINE_FORMAT, ENGINE_VERSION, engine_file, find_engine, gpu_slug
from onepass.runtime.predictor import python_resizing

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = torch.cuda.is_available()
needs_tensorrt_gpu = pytest.mark.skipif(
    not (HAS_TENSORRT and HAS_GPU),
    reason=f"needs TensorRT and a CUDA GPU (TensorRT installed: {HAS_TENSORRT}, GPU: {HAS_GPU})",
)


def test_engine_file_names_carry_gpu_and_version():
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert (
        engine_file("NVIDIA GeForce RTX 4090", "10.13.0.35", "fp16")
        == "model.nvidia-geforce-rtx-4090.trt10.13.0.35.fp16.plan"
    )


def _fake_engine(path, package, **changes):
    plan = path / engine_file("Test GPU", "10.0.0", "fp32")
    plan.write_bytes(b"plan bytes, as TensorRT wrote them")
    info = {
        "format": ENGINE_FORMAT, "version": ENGINE_VERSION, "gpu": "Test GPU", "tensorrt": "10.0.0", "precision": "fp32",
        "onnx_file": "model.onnx", "onnx_sha256": file_sha256(path / "model.onnx"), "input_size": [64, 96], "max_batch": 8,
        "outputs": ["semseg"], "model": package.config.to_json(),
    } | changes  # fmt: skip
    (path / (plan.name + ".json")).write_text(json.dumps(info))
    return plan


def test_find_engine_checks_gpu_version_and_provenance(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg")
    package = open_package(tmp_path / "pkg")
    with pytest.raises(
        PackageError, match=r"no TensorRT engine .* for Test GPU with TensorRT 10.0.0 at fp32 \(found: none\)"
    ):
        find_engine(package, "Test GPU", "10.0.0", "fp32")
    plan = _fake_engine(tmp_path / "pkg", package)
    found, info = find_engine(package, "Test GPU", "10.0.0", "fp32")
    assert found == plan and info.max_batch == 8 and info.input_size == (64, 96)
    with pytest.raises(
        PackageError, match=r"found: model.test-gpu.trt10.0.0.fp32.plan\); build it with `onepass export"
    ):
        find_engine(package, "Other GPU", "10.0.0", "fp32")
    _fake_engine(tmp_path / "pkg", package, onnx_sha256="0" * 64)
    with pytest.raises(PackageError, match="built from another version of this model"):
        find_engine(package, "Test GPU", "10.0.0", "fp32")
    _fake_engine(tmp_path / "pkg", package, version=99)
    with pytest.raises(PackageError, match="not an onepass engine description of version 1"):
        find_engine(package, "Test GPU", "10.0.0", "fp32")


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here: the missing-TensorRT message cannot show")
def test_without_tensorrt_the_export_says_what_to_install(exported_tiny_package, capsys):
    assert main(["export", str(exported_tiny_package), "--format", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and 'pip install ".[gpu]"' in err and "Traceback" not in err


@needs_tensorrt_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("half", [False, True])
def test_build_engine_and_run_it_through_the_predictor(tmp_path, exported_tiny_package, half):
    import onepass

    shutil.copytree(exported_tiny_package, tmp_path / "pkg")
    argv = ["export", str(tmp_path / "pkg"), "--format", "tensorrt", "--max-batch", "8"]
    if half:  # the tiny model's labels are not the synthetic scenes': fp16 is measured on a folder dataset
        from tests.tiny import write_random_dataset

        argv += ["--half", "--eval-data", str(write_random_dataset(tmp_path / "data"))]
    assert main(argv) == 0
    precision = "fp16" if half else "fp32"
    plans = list((tmp_path / "pkg").glob(f"model.*.{precision}.plan"))
    assert len(plans) == 1 and (plans[0].parent / (plans[0].name + ".json")).is_file()
    predictor = onepass.load(tmp_path / "pkg", backend="tensorrt", device="cuda", precision=precision)
    # TensorRT has no frame-size graph: the reference resizes in Python too
    reference = python_resizing(onepass.load(tmp_path / "pkg", backend="torch", device="cpu"))
    images = [np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8) for i in range(11)]  # > max batch
    for got, want in zip(predictor.predict(images), reference.predict(images), strict=True):
        assert (got["semseg"] == want["semseg"]).mean() >= (0.98 if half else 0.999)
        np.testing.assert_allclose(got["depth"], want["depth"], rtol=2e-2 if half else 1e-3, atol=1e-4)


def test_tensorrt_build_without_gpu_or_tensorrt_is_an_export_error(exported_tiny_package):
    if HAS_TENSORRT and HAS_GPU:
        pytest.skip("TensorRT and a GPU are here: the build succeeds (see the test above)")
    from onepass.export.tensorrt import build_engine

    with pytest.raises(ExportError, match="TensorRT is not installed|no CUDA device"):
        build_engine(open_package(exported_tiny_package))
