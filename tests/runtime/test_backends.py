"""Every backend behind one Predictor: same results as the torch backend, `auto` measures and says
which it chose (and which were not available, and why), and a missing or stale export is a clear
error. Every test names its device; CUDA and TensorRT cases run unchanged on a GPU machine and are
skipped with the reason elsewhere."""

from __future__ import annotations

import json
import shutil
from typing import NamedTuple

import numpy as np
import onnx
import pytest
import torch

import onepass
from onepass.data.synth import render_scene
from onepass.errors import ConfigError
from onepass.models import open_package
from onepass.models.package import PackageError
from onepass.runtime import BackendUnavailable, cpu
from onepass.runtime import predictor as predictor_module
from onepass.runtime.predictor import python_resizing
from tests.devices import strict_fp32

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU; this machine has none")


def _images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)]


class Limits(NamedTuple):
    """How far a backend's results may be from the torch backend's, per image."""

    semseg_agreement: float  # fraction of pixels with the same class
    depth_rtol: float  # per pixel, with atol 1e-4 m
    normals_mean_angle: float  # degrees
    attr_atol: float  # per probability (image-level attributes, where the model has them)
    people_box_iou: float = 0.99  # each clear person of the reference (score >= CLEAR_PERSON) has one this close
    people_attribute_atol: float = 1e-3  # per probability, on those persons


CLEAR_PERSON = 0.5  # above the 0.3 count threshold, so a score a little off cannot drop the person


def _box_iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _assert_people_close(got, want, limits: Limits):
    for person in (p for p in want if p["score"] >= CLEAR_PERSON):
        ious = [_box_iou(person["box"], other["box"]) for other in got]
        assert ious and max(ious) >= limits.people_box_iou, (person, got)
        match = got[int(np.argmax(ious))]
        for attribute, value in person.items():
            if isinstance(value, dict):
                np.testing.assert_allclose(
                    list(match[attribute]["probabilities"].values()),
                    list(value["probabilities"].values()),
                    atol=limits.people_attribute_atol,
                )


def _assert_close(results, reference, limits: Limits):
    for got, want in zip(results, reference, strict=True):
        assert (got["semseg"] == want["semseg"]).mean() >= limits.semseg_agreement
        np.testing.assert_allclose(got["depth"], want["depth"], rtol=limits.depth_rtol, atol=1e-4)
        angles = np.degrees(np.arccos(np.clip((got["normals"] * want["normals"]).sum(-1), -1, 1)))
        assert angles.mean() <= limits.normals_mean_angle
        for group, value in want.get("attributes", {}).items():
            np.testing.assert_allclose(
                list(got["attributes"][group]["probabilities"].values()),
                list(value["probabilities"].values()),
                atol=limits.attr_atol,
            )
        if "people" in want:
            _assert_people_close(got["people"], want["people"], limits)


FP32 = Limits(0.999, 1e-3, 0.1, 1e-4)  # the export's own fp32 parity limits
# Measured on the shipped model (version 4: semseg, depth, normals, people; onnxruntime 1.32, CPU
# provider, an AVX2 CPU without VNNI) on the images of `_shipped_model_images` against the torch
# backend, worst image: fp16 agreement 0.99946, depth rtol 4.5e-3, mean angle 0.044°, lowest box IoU
# 0.992 over the 6 clear persons, probabilities 3e-4; int8 (7-bit weights, Relu folded:
# export/int8_options.py's defaults) 0.967, 0.095, 2.60°, 0.947, 0.025. Limits: about twice the
# measured error for fp16; for int8, where CPUs with VNNI run other integer kernels, about 1.5 to 2
# times the measured error and 3 points of agreement.
SHIPPED = {
    "fp32": FP32,
    "fp16": Limits(0.998, 1e-2, 0.1, 1.5e-3, people_box_iou=0.94, people_attribute_atol=1e-3),
    "int8": Limits(0.95, 0.2, 4.0, 0.1, people_box_iou=0.85, people_attribute_atol=0.06),
}


def torch_reference(path, like):
    """The torch backend on the CPU taking the same path as the Predictor `like`: the frame-size graph,
    or Python resizing (whose results differ by design: docs/performance.md)."""
    reference = onepass.load(path, backend="torch", device="cpu")
    return reference if like.runs_frames else python_resizing(reference)


def _shipped_model_images():
    """Held-out-like synthetic scenes (the model's world) and random frames at other sizes."""
    scenes = [render_scene(np.random.default_rng([31, i]), 128, 160).image for i in range(6)]
    return scenes + _images()


@pytest.fixture(scope="module")
def shipped_with_fp16(tmp_path_factory):
    """The shipped model with its shipped model.onnx and model.int8.onnx, plus model.fp16.onnx."""
    from onepass.export.fp16 import export_fp16
    from onepass.models.package import default_package_path

    path = tmp_path_factory.mktemp("shipped") / "pkg"
    shutil.copytree(default_package_path(), path)
    export_fp16(open_package(path))
    return path


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_onnxruntime_matches_torch(shipped_with_fp16, precision):
    images = _shipped_model_images()
    predictor = onepass.load(shipped_with_fp16, backend="onnxruntime", device="cpu", precision=precision)
    reference = torch_reference(shipped_with_fp16, predictor).predict(images)
    assert predictor.backend.name == "onnxruntime" and predictor.backend.providers == ["CPUExecutionProvider"]
    assert (
        predictor.backend.path.name
        == {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}[precision]
    )
    _assert_close(predictor.predict(images), reference, SHIPPED[precision])


def test_sharing_cores_gives_onnxruntime_a_session_that_does_not_spin_and_answers_the_same(exported_tiny_package):
    onnx = onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu").backend
    shared = onnx.sharing_cores()
    assert onnx.spinning and shared is not onnx and not shared.spinning
    assert shared._options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert shared.sharing_cores() is shared  # already sleeps when idle
    batch = np.random.default_rng(0).integers(0, 256, (2, *open_package(exported_tiny_package).config.input_size, 3))
    batch = batch.astype(np.uint8)
    expected, got = onnx.run(batch), shared.run(batch)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    torch_backend = onepass.load(exported_tiny_package, backend="torch", device="cpu").backend
    assert torch_backend.sharing_cores() is torch_backend  # only onnxruntime has a spinning option


def test_a_predictor_loaded_to_share_the_cores_builds_its_sessions_sleeping(exported_tiny_package):
    """`shares_cores=True`: onnxruntime's session is opened not spinning (what `auto` times is what
    runs), so `sharing_cores` has nothing left to copy; the torch backend is as it always is."""
    onnx = onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu", shares_cores=True).backend
    assert not onnx.spinning and onnx.sharing_cores() is onnx
    assert onnx._options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    chosen = onepass.load(exported_tiny_package, device="cpu", shares_cores=True).backend
    assert chosen.sharing_cores() is chosen
    assert onepass.load(exported_tiny_package, backend="torch", device="cpu", shares_cores=True).backend.name == "torch"


def test_auto_measures_the_backends_and_says_which_it_chose(exported_tiny_package):
    predictor = onepass.load(exported_tiny_package, device="cpu")
    choice = predictor.backend_choice
    assert choice.startswith(f"{predictor.backend.name} (auto: batch-1 median on cpu:")
    timings = dict(part.rsplit(" ", 2)[:2] for part in choice.split(": ", 2)[2].rstrip(")").split(", "))
    assert set(timings) == {"torch", "onnxruntime"}  # tensorrt: no GPU here, so not a candidate
    assert min(timings, key=lambda k: float(timings[k])) == predictor.backend.name  # the fastest is kept


def test_auto_times_the_candidates_at_the_batch_the_caller_will_run(exported_tiny_package, monkeypatch):
    """Which backend is fastest can change with the batch (on an AMX CPU compiled bf16 torch loses to
    onnxruntime at batch 1 and beats it at batch 8): `batch_size` is the batch every candidate is timed at."""
    timed: dict[str, set[int]] = {}
    open_backend = predictor_module.open_backend

    def recording(backend, *args, **kwargs):
        opened = open_backend(backend, *args, **kwargs)
        run = opened.run

        def recorded_run(images):
            timed.setdefault(opened.name, set()).add(len(images))
            return run(images)

        monkeypatch.setattr(opened, "run", recorded_run)
        return opened

    monkeypatch.setattr(predictor_module, "open_backend", recording)
    predictor = onepass.load(exported_tiny_package, device="cpu", batch_size=3)
    assert timed == {"torch": {3}, "onnxruntime": {3}}
    assert predictor.backend_choice.startswith(f"{predictor.backend.name} (auto: batch-3 median on cpu:")
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1, got 0"):
        onepass.load(exported_tiny_package, device="cpu", batch_size=0)


@pytest.mark.parametrize("bf16_units", [True, False], ids=["avx512-bf16 cpu", "avx2 cpu"])
def test_auto_precision_times_bf16_only_where_the_cpu_computes_it(exported_tiny_package, monkeypatch, bf16_units):
    flags = {"avx2", "fma"} | ({"avx512f", "avx512_bf16"} if bf16_units else set())
    monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)
    predictor = onepass.load(exported_tiny_package, device="cpu", precision="auto")
    timings = _labels(predictor.backend_choice)
    assert set(timings) == {"torch fp32", "onnxruntime fp32"} | ({"torch bf16"} if bf16_units else set())
    chosen = f"{predictor.backend.name} {predictor.backend.precision}"
    assert predictor.backend_choice.startswith(f"{chosen} (auto:") and min(timings, key=timings.get) == chosen
    if not bf16_units:
        assert "no AMX / AVX512-BF16" in predictor.unavailable["torch bf16"]
    assert not any("int8" in label for label in [*timings, *predictor.unavailable])  # never picked for you
    with pytest.raises(ConfigError, match="precision 'auto' picks among backends"):
        onepass.load(exported_tiny_package, backend="torch", device="cpu", precision="auto")


def _labels(choice: str) -> dict[str, float]:
    """'torch bf16 (auto: batch-1 median on cpu: torch bf16 1.2 ms, onnxruntime fp32 2.0 ms)' -> label: ms."""
    parts = choice.split(": ", 2)[2].rstrip(")").split(", ")
    return {part.rsplit(" ", 2)[0]: float(part.rsplit(" ", 2)[1]) for part in parts}


def test_auto_without_exports_is_torch(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg", ignore=shutil.ignore_patterns("*.onnx"))
    predictor = onepass.load(tmp_path / "pkg", device="cpu")
    assert predictor.backend.name == "torch" and "onnxruntime" not in predictor.backend_choice.split(":", 2)[2]


def test_missing_and_stale_exports_are_clear_errors(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg", ignore=shutil.ignore_patterns("model.int8.onnx"))
    with pytest.raises(
        BackendUnavailable, match=r"model.int8.onnx not found: export it first with `onepass export .* --int8`"
    ):
        onepass.load(tmp_path / "pkg", backend="onnxruntime", device="cpu", precision="int8")
    stale = onnx.load(str(tmp_path / "pkg" / "model.onnx"))
    meta = next(p for p in stale.metadata_props if p.key == "onepass.json")
    data = json.loads(meta.value)
    data["model"]["input_size"] = [32, 32]
    meta.value = json.dumps(data)
    onnx.save(stale, str(tmp_path / "pkg" / "model.onnx"))
    with pytest.raises(PackageError, match="exported from a different model configuration"):
        onepass.load(tmp_path / "pkg", backend="onnxruntime", device="cpu")
    with pytest.raises(PackageError, match="exported from a different model configuration"):
        onepass.load(tmp_path / "pkg", device="cpu")  # auto: a stale export is an error to fix, not skipped
    meta.value = json.dumps(data | {"model": open_package(tmp_path / "pkg").config.to_json()})
    next(p for p in stale.metadata_props if p.key == "onepass.weights_sha256").value = "0" * 64
    onnx.save(stale, str(tmp_path / "pkg" / "model.onnx"))
    with pytest.raises(PackageError, match="exported from other weights than"):
        onepass.load(tmp_path / "pkg", backend="onnxruntime", device="cpu")
    (tmp_path / "pkg" / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(PackageError, match="onnxruntime cannot load it"):
        onepass.load(tmp_path / "pkg", backend="onnxruntime", device="cpu")


def test_an_older_export_whose_metadata_saved_pretrained_still_loads(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg")
    older = onnx.load(str(tmp_path / "pkg" / "model.onnx"))
    meta = next(p for p in older.metadata_props if p.key == "onepass.json")
    data = json.loads(meta.value)
    data["model"]["pretrained"] = False  # what onepass wrote before `pretrained` became provenance only
    meta.value = json.dumps(data)
    onnx.save(older, str(tmp_path / "pkg" / "model.onnx"))
    assert onepass.load(tmp_path / "pkg", backend="onnxruntime", device="cpu").backend.name == "onnxruntime"


def test_refusals_name_the_reason(exported_tiny_package):
    with pytest.raises(BackendUnavailable, match="unknown precision 'bf16'"):
        onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu", precision="bf16")
    with pytest.raises(BackendUnavailable, match="tensorrt backend: needs a CUDA device \\(asked for 'cpu'\\)"):
        onepass.load(exported_tiny_package, backend="tensorrt", device="cpu")
    with pytest.raises(BackendUnavailable, match="no backend can run .* at int4"):
        onepass.load(exported_tiny_package, precision="int4", device="cpu")
    assert issubclass(BackendUnavailable, ConfigError)  # the CLI prints it as one line


def test_auto_on_a_cuda_machine_without_tensorrt_or_the_cuda_provider(exported_tiny_package, monkeypatch):
    """The normal GPU install: CUDA, no TensorRT, and here an onnxruntime without its CUDA provider.
    `auto` must skip the two that cannot run, say why, and keep the one that can."""
    import sys

    import onnxruntime

    from onepass.runtime import torch_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    # no kernels run on this fake GPU: the torch backend, which CUDA machines do have, computes on the CPU
    cuda_init = torch_backend.TorchBackend.__init__
    monkeypatch.setattr(
        torch_backend.TorchBackend,
        "__init__",
        lambda self, package, device, **kw: cuda_init(self, package, "cpu", **kw),
    )
    predictor = onepass.load(exported_tiny_package)  # every default: device auto (CUDA here), backend auto
    assert predictor.backend.name == "torch"
    assert predictor.backend_choice.startswith("torch (auto: batch-1 median on cuda: torch ")
    assert set(predictor.unavailable) == {"onnxruntime", "tensorrt"}
    assert "needs onnxruntime-gpu" in predictor.unavailable["onnxruntime"]
    assert "TensorRT is not installed" in predictor.unavailable["tensorrt"]
    for backend in ("onnxruntime", "tensorrt"):
        with pytest.raises(BackendUnavailable):
            onepass.load(exported_tiny_package, backend=backend)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("backend, precision", [("torch", "fp32"), ("torch", "fp16"), ("onnxruntime", "fp32")])
def test_cuda_backends_match_cpu(exported_tiny_package, backend, precision):
    if backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            pytest.skip("onnxruntime here is the CPU build (install onnxruntime-gpu for the CUDA provider)")
    predictor = onepass.load(exported_tiny_package, backend=backend, device="cuda", precision=precision)
    reference = torch_reference(exported_tiny_package, predictor).predict(_images())
    with strict_fp32():  # fp32 on CUDA computes in fp32 (cuDNN would use TF32), so fp32 tolerances hold
        results = predictor.predict(_images())
    # fp16: the limits this test always had (not yet measured on a GPU)
    _assert_close(results, reference, FP32 if precision == "fp32" else Limits(0.98, 2e-2, 2.0, 5e-3))


def test_default_model_exports_again_with_parity_and_its_shipped_onnx_is_current(tmp_path):
    from onepass.data.files import file_sha256
    from onepass.export.onnx import export_onnx
    from onepass.export.parity import onnx_parity
    from onepass.models.package_exports import WEIGHTS_KEY

    shipped = open_package("default")
    for name in ("model.onnx", "model.int8.onnx"):  # shipped exports were made from the shipped weights
        props = {p.key: p.value for p in onnx.load(str(shipped.path / name), load_external_data=False).metadata_props}
        assert props[WEIGHTS_KEY] == file_sha256(shipped.path / "weights.safetensors")
    shutil.copytree(shipped.path, tmp_path / "pkg", ignore=shutil.ignore_patterns("*.onnx"))
    package = open_package(tmp_path / "pkg")
    checks = onnx_parity(package, export_onnx(package))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    image = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    on_onnxruntime = onepass.load(package.path, backend="onnxruntime", device="cpu")
    reference = torch_reference(package.path, on_onnxruntime).predict(image)
    _assert_close(on_onnxruntime.predict(image), reference, FP32)


def test_onnxruntime_runs_the_frame_size_graph_where_the_package_has_it(frame_tiny_package, exported_tiny_package):
    """With model.frame.onnx the onnxruntime backend takes frames at their own size, as the torch backend
    does, at fp32's limits; a package without it (or another precision) resizes in Python, as before."""
    images = _images()
    reference = onepass.load(frame_tiny_package, backend="torch", device="cpu").predict(images)
    predictor = onepass.load(frame_tiny_package, backend="onnxruntime", device="cpu")
    assert predictor.runs_frames
    _assert_close(predictor.predict(images), reference, FP32)
    assert not onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu").runs_frames
    assert not onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu", precision="int8").runs_frames
