"""Every backend behind one Predictor: same results as the torch backend, `auto` measures and says
which it chose, and a missing or stale export is a clear error. CUDA and TensorRT cases run
unchanged on a GPU machine and are skipped with the reason elsewhere."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

import onepass
from onepass.models import open_package
from onepass.models.package import PackageError
from onepass.models.tasks import ConfigError

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU; this machine has none")


def _images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)]


def _assert_close(results, reference, semseg_agreement, depth_rtol, attr_atol):
    for got, want in zip(results, reference, strict=True):
        assert (got["semseg"] == want["semseg"]).mean() >= semseg_agreement
        np.testing.assert_allclose(got["depth"], want["depth"], rtol=depth_rtol, atol=1e-4)
        assert np.degrees(np.arccos(np.clip((got["normals"] * want["normals"]).sum(-1), -1, 1))).mean() < 2.0
        for group, value in want["attributes"].items():
            np.testing.assert_allclose(
                list(got["attributes"][group]["probabilities"].values()),
                list(value["probabilities"].values()),
                atol=attr_atol,
            )


@pytest.mark.parametrize(
    "precision, semseg_agreement, depth_rtol, attr_atol",
    [("fp32", 0.999, 1e-3, 1e-4), ("fp16", 0.98, 2e-2, 5e-3), ("int8", 0.5, 0.5, 0.2)],
)
def test_onnxruntime_matches_torch(exported_tiny_package, precision, semseg_agreement, depth_rtol, attr_atol):
    reference = onepass.load(exported_tiny_package, backend="torch", device="cpu").predict(_images())
    predictor = onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu", precision=precision)
    assert predictor.backend.name == "onnxruntime" and predictor.backend.providers == ["CPUExecutionProvider"]
    assert (
        predictor.backend.path.name
        == {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}[precision]
    )
    _assert_close(predictor.predict(_images()), reference, semseg_agreement, depth_rtol, attr_atol)


def test_auto_measures_the_backends_and_says_which_it_chose(exported_tiny_package):
    predictor = onepass.load(exported_tiny_package, device="cpu")
    choice = predictor.backend_choice
    assert choice.startswith(f"{predictor.backend.name} (auto: batch-1 median on cpu:")
    timings = dict(part.rsplit(" ", 2)[:2] for part in choice.split(": ", 2)[2].rstrip(")").split(", "))
    assert set(timings) == {"torch", "onnxruntime"}  # tensorrt: no GPU here, so not a candidate
    assert min(timings, key=lambda k: float(timings[k])) == predictor.backend.name  # the fastest is kept


def test_auto_without_exports_is_torch(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg", ignore=shutil.ignore_patterns("*.onnx"))
    predictor = onepass.load(tmp_path / "pkg", device="cpu")
    assert predictor.backend.name == "torch" and "onnxruntime" not in predictor.backend_choice.split(":", 2)[2]


def test_missing_and_stale_exports_are_clear_errors(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg", ignore=shutil.ignore_patterns("model.int8.onnx"))
    with pytest.raises(
        PackageError, match=r"model.int8.onnx not found: export it first with `onepass export .* --int8`"
    ):
        onepass.load(tmp_path / "pkg", backend="onnxruntime", precision="int8")
    stale = onnx.load(str(tmp_path / "pkg" / "model.onnx"))
    meta = next(p for p in stale.metadata_props if p.key == "onepass.json")
    data = json.loads(meta.value)
    data["model"]["input_size"] = [32, 32]
    meta.value = json.dumps(data)
    onnx.save(stale, str(tmp_path / "pkg" / "model.onnx"))
    with pytest.raises(PackageError, match="exported from a different model configuration"):
        onepass.load(tmp_path / "pkg", backend="onnxruntime")
    meta.value = json.dumps(data | {"model": open_package(tmp_path / "pkg").config.to_json()})
    next(p for p in stale.metadata_props if p.key == "onepass.weights_sha256").value = "0" * 64
    onnx.save(stale, str(tmp_path / "pkg" / "model.onnx"))
    with pytest.raises(PackageError, match="exported from other weights than"):
        onepass.load(tmp_path / "pkg", backend="onnxruntime")
    (tmp_path / "pkg" / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(PackageError, match="onnxruntime cannot load it"):
        onepass.load(tmp_path / "pkg", backend="onnxruntime")


def test_refusals_name_the_reason(exported_tiny_package):
    with pytest.raises(ConfigError, match="unknown precision 'bf16'"):
        onepass.load(exported_tiny_package, backend="onnxruntime", precision="bf16")
    if not CUDA:
        with pytest.raises(ConfigError, match="tensorrt backend: needs a CUDA device"):
            onepass.load(exported_tiny_package, backend="tensorrt")
    with pytest.raises(ConfigError, match="no backend can run .* at int4"):
        onepass.load(exported_tiny_package, precision="int4", device="cpu")


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("backend, precision", [("torch", "fp32"), ("torch", "fp16"), ("onnxruntime", "fp32")])
def test_cuda_backends_match_cpu(exported_tiny_package, backend, precision):
    if backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            pytest.skip("onnxruntime here is the CPU build (install onnxruntime-gpu for the CUDA provider)")
    reference = onepass.load(exported_tiny_package, backend="torch", device="cpu").predict(_images())
    predictor = onepass.load(exported_tiny_package, backend=backend, device="cuda", precision=precision)
    tight = precision == "fp32"
    _assert_close(
        predictor.predict(_images()),
        reference,
        0.999 if tight else 0.98,
        1e-3 if tight else 2e-2,
        1e-3 if tight else 5e-3,
    )


def test_default_model_exports_again_with_parity_and_its_shipped_onnx_is_current(tmp_path):
    from onepass.export.onnx import WEIGHTS_KEY, export_onnx
    from onepass.export.parity import onnx_parity
    from onepass.models.package import file_sha256

    shipped = open_package("default")
    for name in ("model.onnx", "model.int8.onnx"):  # shipped exports were made from the shipped weights
        props = {p.key: p.value for p in onnx.load(str(shipped.path / name), load_external_data=False).metadata_props}
        assert props[WEIGHTS_KEY] == file_sha256(shipped.path / "weights.safetensors")
    shutil.copytree(shipped.path, tmp_path / "pkg", ignore=shutil.ignore_patterns("*.onnx"))
    package = open_package(tmp_path / "pkg")
    checks = onnx_parity(package, export_onnx(package))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    image = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    reference = onepass.load(package.path, backend="torch", device="cpu").predict(image)
    on_onnxruntime = onepass.load(package.path, backend="onnxruntime", device="cpu").predict(image)
    _assert_close(on_onnxruntime, reference, 0.999, 1e-3, 1e-4)
