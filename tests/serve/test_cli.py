"""`onepass serve` options -> the bentoml command and the service's settings; model resolution,
including a BentoML model store tag; a bad model or backend fails in one line before anything starts,
and so does a model, backend, device or precision that cannot load (real `onepass serve` processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import onepass
from onepass.cli import build_parser, main
from onepass.errors import ConfigError
from onepass.models.package import PackageError, default_package_path
from onepass.serve import launch
from onepass.serve.cli import SERVICE, bentoml_arguments, serve_settings
from onepass.serve.settings import ServeSettings, resolve_model
from tests.serve.conftest import FAIL_FAST_SECONDS, free_port, run_timed


def command_for(*argv: str) -> list[str]:
    args = build_parser().parse_args(["serve", *argv])
    return bentoml_arguments(args, serve_settings(args))


def test_defaults_serve_the_shipped_model_on_localhost_only():
    command = command_for()
    assert command == ["serve", SERVICE, "--port", "3000", "--host", "127.0.0.1"]  # default settings need no --arg
    assert command_for("--host", "0.0.0.0")[5] == "0.0.0.0"  # exposing it is explicit


def test_options_become_bentoml_arguments_and_the_rest_passes_through(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "onepass.json").write_text((resolve_default() / "onepass.json").read_text())
    command = command_for(
        str(package), "--port", "8080", "--workers", "2", "--backend", "torch", "--max-upload-mb", "5", "--compile",
        "--bentoml", "--development", "--timeout-keep-alive", "10",
    )  # fmt: skip
    args = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--arg")
    assert args == {
        "model": str(package.resolve()), "backend": "torch", "compile": "True", "workers": "2", "max_upload_mb": "5.0"
    }  # fmt: skip
    assert command[-3:] == ["--development", "--timeout-keep-alive", "10"]
    assert ServeSettings.from_arguments(args) == ServeSettings(
        model=str(package.resolve()), backend="torch", compile=True, workers=2, max_upload_mb=5.0
    )


def resolve_default():
    return default_package_path()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "no-such-model"], "neither a model package directory nor a tag"),
        (["serve", "./missing/dir"], "no such model package directory"),
        (["serve", "--backend", "onnx"], "unknown backend 'onnx'"),
        (["serve", "--workers", "0"], "workers must be at least 1"),
        (["serve", "--max-batch-size", "1"], "max_batch_size must be at least 2"),
        (["serve", "--backend", "onnxruntime", "--compile"], "the onnxruntime backend has no compile option"),
    ],
)
def test_bad_options_fail_in_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(launch, "run_bentoml", lambda *a: pytest.fail("must not start the server"))
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_settings_from_arguments_check_names_and_types():
    assert ServeSettings.from_arguments({"workers": "3", "max_upload_mb": "1.5"}).workers == 3
    with pytest.raises(ConfigError, match="unknown serve argument"):
        ServeSettings.from_arguments({"modle": "x"})
    with pytest.raises(ConfigError, match="must be int"):
        ServeSettings.from_arguments({"workers": "many"})
    # a flag: the text of `--arg compile=False` is not Python's truthiness
    assert ServeSettings.from_arguments({"compile": "False"}).compile is False
    assert ServeSettings.from_arguments({"compile": "true"}).compile is True
    with pytest.raises(ConfigError, match="serve argument compile='yes please' must be bool"):
        ServeSettings.from_arguments({"compile": "yes please"})


def test_resolve_model(tmp_path):
    assert resolve_model("default") is None and resolve_model(None) is None
    assert resolve_model(tmp_path) == tmp_path
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(PackageError, match="not a model package directory"):
        resolve_model(tmp_path / "file.txt")


def test_model_store_tag_resolves_to_its_package(tmp_path):
    """A package saved in a (temporary) BentoML model store is found by its tag."""
    script = textwrap.dedent(
        """
        import shutil, bentoml
        from onepass.models.package import default_package_path, open_package
        from onepass.serve.settings import resolve_model
        with bentoml.models.create("onepass-test") as model:
            for f in default_package_path().glob("*.json"):
                shutil.copy(f, model.path)
        path = resolve_model("onepass-test:latest")
        assert open_package(path).name == "onepass-default", path
        with bentoml.models.create("not-onepass") as other:
            pass
        try:
            resolve_model("not-onepass")
        except Exception as error:
            assert "holds no onepass.json" in str(error), error
        else:
            raise AssertionError("a store entry without a package must be refused")
        print("ok")
        """
    )
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


# ---- a model that cannot load: `onepass serve` exits at once, in one line, as `onepass predict` would ----


def package_without_onnx(root):
    package = root / "no-onnx"
    package.mkdir()
    for name in ("onepass.json", "weights.safetensors"):
        shutil.copy(default_package_path() / name, package)
    return package


def package_with_truncated_weights(root):
    package = root / "truncated"
    package.mkdir()
    for name in ("onepass.json", "model.onnx"):  # the ONNX export too: "auto" must refuse it as well
        shutil.copy(default_package_path() / name, package)
    weights = (default_package_path() / "weights.safetensors").read_bytes()
    (package / "weights.safetensors").write_bytes(weights[: len(weights) // 3])
    return package


CANNOT_LOAD = {
    # case: (model package maker or None for the shipped model, onepass serve options)
    "tensorrt without a GPU": (None, ["--backend", "tensorrt"]),
    "precision int9": (None, ["--precision", "int9"]),
    "int8 on the torch backend": (None, ["--precision", "int8", "--backend", "torch"]),
    "onnxruntime without model.onnx": (package_without_onnx, ["--backend", "onnxruntime"]),
    "truncated weights": (package_with_truncated_weights, []),
}


def load_error(model, options: list[str]) -> str:
    """What `onepass.load` (and so `onepass predict`) says for these options, computed in process."""
    args = build_parser().parse_args(["serve", *([str(model)] if model else []), *options])
    try:
        onepass.load(model, backend=args.backend, device=args.device, precision=args.precision)
    except (ConfigError, PackageError) as error:
        return str(error)
    pytest.skip(f"this machine can load the model with {options}")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CANNOT_LOAD))
def test_a_model_that_cannot_load_fails_fast_in_one_line_before_bentoml_starts(case, tmp_path):
    make_package, options = CANNOT_LOAD[case]
    model = make_package(tmp_path.resolve()) if make_package else None
    expected = load_error(model, options)
    command = [sys.executable, "-m", "onepass", "serve", *([str(model)] if model else []), *options]
    done, wall, cpu = run_timed([*command, "--port", str(free_port())])
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr == f"onepass serve: error: {expected}\n"  # one line, the reason `onepass predict` gives
    assert "BentoServer" not in done.stdout + done.stderr  # BentoML never started
    assert cpu < FAIL_FAST_SECONDS, f"{cpu:.1f} s of CPU ({wall:.1f} s wall) before exiting"
