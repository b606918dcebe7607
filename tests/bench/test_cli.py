"""`onepass bench` options: every mistake is one line on stderr and exit status 2, before any work."""

from __future__ import annotations

import sys

import pytest

from onepass.bench.plan import BenchSettings, plan_variants
from onepass.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backends", "onnxruntim"], "unknown backend 'onnxruntim'; did you mean 'onnxruntime'?"),
        (["--precisions", "fp8"], "unknown precision 'fp8'"),
        (["--batch-sizes", "1,x"], "must be comma-separated integers"),
        (["--batch-sizes", "0"], "one or more integers >= 1"),
        (["--input-sizes", "100x100"], "multiples of 32"),
        (["--url", "http://x"], "--url: not an option of onepass bench MODEL"),
        (["--iters", "0"], "--iters 0: must be at least 1"),
        (["--source-size", "480x"], "--source-size '480x' must look like HxW"),
        (["--head-cost", "nomrals"], "unknown --head-cost task 'nomrals'; did you mean 'normals'?"),
        (["--model", "default"], "--model: not an option of onepass bench MODEL"),
        (["--baseline"], "--baseline: not an option of onepass bench MODEL"),
        (["--compile"], "--compile: not an option of onepass bench MODEL"),
    ],
)
def test_model_mode_errors(tiny_package, argv, message, capsys):
    assert main(["bench", str(tiny_package), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "needs --url URL (a running server"),
        (["--url", "http://x", "--duration", "1", "--requests", "3"], "not both"),
        (["--url", "http://x", "--batch-sizes", "1"], "--batch-sizes: not an option of onepass bench serve"),
        (["--url", "http://x", "--head-cost", "people"], "--head-cost: not an option of onepass bench serve"),
        (["--url", "http://x", "--field", "novalue"], "must be KEY=VALUE"),
        (["--url", "http://x", "--field", "maps=false"], "set by --maps"),
        (["--url", "http://x", "--maps", "yes"], "--maps 'yes': give true, false, or true,false"),
        (["--url", "http://x", "--source-size", "48x64,96x128"], "uploads one frame size"),
        (["--url", "http://x", "--baseline"], "--baseline needs --model MODEL"),
        (["--url", "http://x", "--workers", "0"], "--workers 0: must be at least 1"),
    ],
)
def test_serve_mode_errors(argv, message, capsys):
    assert main(["bench", "serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_model_is_a_package_error(capsys):
    assert main(["bench", "/nonexistent/model", "--backends", "torch"]) == 2
    assert "not a model package directory" in capsys.readouterr().err


def test_plot_without_matplotlib_fails_before_measuring(tiny_package, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["bench", str(tiny_package), "--plot", "somewhere"]) == 2
    assert "pip install 'onepass[bench]'" in capsys.readouterr().err


def test_default_plan_on_cpu_lists_every_format_this_device_has():
    planned = {p.variant.label: p.skip for p in plan_variants(BenchSettings(model="m"), "cpu")}
    assert "tensorrt fp32" not in planned  # a CUDA-only format is not offered on a CPU by default
    assert planned["torch fp32"] is None and planned["onnxruntime fp32"] is None
    assert "CUDA" in planned["torch fp16"]
    explicit = plan_variants(BenchSettings(model="m", formats=("tensorrt",)), "cpu")
    assert all("CUDA" in p.skip for p in explicit)
