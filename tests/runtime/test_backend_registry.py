"""The backend registry (runtime/backend.py): every backend declares what it runs and why it refuses,
and `onepass.load`, `auto` and the bench planner ask it instead of restating its rules; the README's
backend table names what it declares. Parametrised over the registry, so a new backend is checked too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import onepass
from onepass.bench.plan import FORMATS, Variant, skip_reason
from onepass.errors import ConfigError
from onepass.models import open_package
from onepass.runtime import BACKEND_TYPES, BackendUnavailable
from onepass.runtime.backend import RegisteredBackend, register_backend
from onepass.runtime.onnxruntime_backend import OnnxRuntimeBackend

CUDA = torch.cuda.is_available()
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("name", list(BACKEND_TYPES))
def test_each_backend_declares_what_it_runs(name):
    backend = BACKEND_TYPES[name]
    assert backend.name == name and issubclass(backend, RegisteredBackend)
    assert backend.precisions and set(backend.devices) <= {"cpu", "cuda"} and backend.devices
    assert backend.runs_from in ("weights", "onnx", "plan")
    assert all(backend.file_name(precision) for precision in backend.precisions)


@pytest.mark.parametrize("name", list(BACKEND_TYPES))
def test_each_backend_refuses_what_it_does_not_declare(name):
    backend = BACKEND_TYPES[name]
    assert backend.refusal(None, "cpu", "int4") == (
        f"{name} backend: unknown precision 'int4' (valid: {', '.join(backend.precisions)})"
    )
    with pytest.raises(ConfigError, match="device 'gpu': expected cpu, cuda or cuda:N"):
        backend.refusal(None, "gpu", backend.precisions[0])  # a typo is the user's error, not "unavailable"
    if "cpu" not in backend.devices:
        assert (
            backend.refusal(None, "cpu", backend.precisions[0])
            == f"{name} backend: needs a CUDA device (asked for 'cpu')"
        )
    if "cuda" in backend.devices and not CUDA:
        assert "device 'cuda' is not here (CUDA available: False" in backend.refusal(
            None, "cuda", backend.precisions[0]
        )


def test_a_package_without_the_export_is_refused_with_the_command_that_makes_it(tmp_path, exported_tiny_package):
    shutil.copytree(exported_tiny_package, tmp_path / "pkg", ignore=shutil.ignore_patterns("model.fp16.onnx"))
    package = open_package(tmp_path / "pkg")
    assert OnnxRuntimeBackend.refusal(package, "cpu", "fp16") == (
        f"{package.path / 'model.fp16.onnx'} not found: export it first with `onepass export {package.path} --half`"
    )
    assert OnnxRuntimeBackend.refusal(package, "cpu", "int8") is None
    assert OnnxRuntimeBackend.refusal(None, "cpu", "fp16") is None  # this machine only: the bench exports it


def test_reading_the_registry_and_its_refusals_loads_no_engine():
    """What makes the registry cheap to ask (`onepass --help`, the bench planner): no engine, no numpy."""
    script = (
        "import json, sys; from onepass.runtime import BACKEND_TYPES; "
        "reasons = {f'{n} {p}': b.refusal(None, 'cpu', p) for n, b in BACKEND_TYPES.items() for p in b.precisions}; "
        "print(json.dumps({'reasons': reasons, 'modules': sorted(sys.modules)}))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(result.stdout)
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert loaded.isdisjoint({"torch", "numpy", "onnxruntime", "tensorrt", "PIL", "onnx"}), sorted(loaded)
    assert report["reasons"]["torch fp32"] is None and "fp16 needs a CUDA device" in report["reasons"]["torch fp16"]
    assert "needs a CUDA device" in report["reasons"]["tensorrt fp32"]


def test_load_validates_the_name_against_the_registry(exported_tiny_package):
    with pytest.raises(ConfigError, match=r"unknown backend 'onnxrt'; did you mean 'onnxruntime'\? \(valid: auto, "):
        onepass.load(exported_tiny_package, backend="onnxrt", device="cpu")
    with pytest.raises(ConfigError, match="the onnxruntime backend has no compile option"):
        onepass.load(exported_tiny_package, backend="onnxruntime", device="cpu", compile=True)
    with pytest.raises(ValueError, match="backend 'torch' registered twice"):
        register_backend(BACKEND_TYPES["torch"])


class _Instant(RegisteredBackend):
    """A backend that answers at once (zeros): `auto` must find it in the registry and keep it."""

    name = "instant"
    precisions = ("fp32",)
    devices = ("cpu",)
    runs_from = "weights"

    @classmethod
    def file_name(cls, precision: str) -> str:
        return "weights.safetensors"

    def __init__(self, package, device, precision):
        self.outputs = {"semseg": np.zeros((1, *package.config.input_size), np.uint8)}

    def run(self, images):
        return self.outputs


class _Absent(_Instant):
    name = "absent"

    @classmethod
    def refusal(cls, package, device, precision, **options):
        return "absent backend: its library is not installed here"


def test_auto_tries_every_registered_backend_and_says_why_one_was_left_out(exported_tiny_package, monkeypatch):
    monkeypatch.setitem(BACKEND_TYPES, "instant", _Instant)
    monkeypatch.setitem(BACKEND_TYPES, "absent", _Absent)
    predictor = onepass.load(exported_tiny_package, device="cpu")
    assert predictor.backend.name == "instant"
    timed = set(re.findall(r"(\w+) [\d.]+ ms", predictor.backend_choice))
    assert timed == {"torch", "onnxruntime", "instant"}
    assert predictor.unavailable == {
        "tensorrt": "tensorrt backend: needs a CUDA device (asked for 'cpu')",
        "absent": "absent backend: its library is not installed here",
    }
    with pytest.raises(BackendUnavailable, match="^absent backend: its library is not installed here$"):
        onepass.load(exported_tiny_package, backend="absent", device="cpu")
    with pytest.raises(ConfigError, match=r"instant backend: takes no option compile \(its options: none\)"):
        _Instant.open(open_package(exported_tiny_package), "cpu", "fp32", compile=True)


def test_the_bench_formats_and_their_refusals_are_the_registrys():
    assert {spec.backend for spec in FORMATS.values()} == set(BACKEND_TYPES)
    for name, spec in FORMATS.items():
        backend = BACKEND_TYPES[spec.backend]
        assert (spec.precisions, spec.devices, spec.file) == (backend.precisions, backend.devices, backend.runs_from)
        assert spec.compile == name.endswith("-compile") and (not spec.compile or "compile" in backend.options)
        for precision in spec.precisions:
            options = {"compile": True} if spec.compile else {}
            expected = backend.refusal(None, "cpu", precision, **options)
            assert skip_reason(Variant(name, precision), "cpu", explicit=True) == expected


def test_the_readme_backend_table_names_what_each_backend_declares():
    text = README.read_text()
    table = text[text.index("| backend | runs | precisions | notes |") :].split("\n\n")[0].splitlines()[2:]
    rows = {re.match(r"\| `(\w+)` \|", row).group(1): row.split(" | ") for row in table}
    assert list(rows) == [*BACKEND_TYPES, "auto"]
    for name, backend in BACKEND_TYPES.items():
        precisions = re.findall(r"fp32|bf16|fp16|int8", rows[name][2])
        assert precisions == list(backend.precisions), (name, rows[name][2])
