"""`onepass serve` options -> the bentoml command and the service's settings; model resolution,
including a BentoML model store tag; a bad model or backend fails in one line before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from onepass.cli import build_parser, main
from onepass.models.package import PackageError
from onepass.models.tasks.base import ConfigError
from onepass.serve.cli import SERVICE, bentoml_command
from onepass.serve.settings import ServeSettings, resolve_model


def command_for(*argv: str) -> list[str]:
    return bentoml_command(build_parser().parse_args(["serve", *argv]))


def test_defaults_serve_the_shipped_model():
    command = command_for()
    assert command[1:5] == ["-m", "bentoml", "serve", SERVICE]
    assert command[5:] == ["--port", "3000", "--host", "0.0.0.0"]  # default settings need no --arg


def test_options_become_bentoml_arguments_and_the_rest_passes_through(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "onepass.json").write_text((resolve_default() / "onepass.json").read_text())
    command = command_for(
        str(package), "--port", "8080", "--workers", "2", "--backend", "torch", "--max-upload-mb", "5",
        "--bentoml", "--development", "--timeout-keep-alive", "10",
    )  # fmt: skip
    args = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--arg")
    assert args == {"model": str(package.resolve()), "backend": "torch", "workers": "2", "max_upload_mb": "5.0"}
    assert command[-3:] == ["--development", "--timeout-keep-alive", "10"]
    assert ServeSettings.from_arguments(args) == ServeSettings(
        model=str(package.resolve()), backend="torch", workers=2, max_upload_mb=5.0
    )


def resolve_default():
    from onepass.models.package import default_package_path

    return default_package_path()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "no-such-model"], "neither a model package directory nor a tag"),
        (["serve", "./missing/dir"], "no such model package directory"),
        (["serve", "--backend", "onnx"], "unknown backend 'onnx'"),
        (["serve", "--workers", "0"], "workers must be at least 1"),
        (["serve", "--max-batch-size", "1"], "max_batch_size must be at least 2"),
    ],
)
def test_bad_options_fail_in_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("must not start the server"))
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_settings_from_arguments_check_names_and_types():
    assert ServeSettings.from_arguments({"workers": "3", "max_upload_mb": "1.5"}).workers == 3
    with pytest.raises(ConfigError, match="unknown serve argument"):
        ServeSettings.from_arguments({"modle": "x"})
    with pytest.raises(ConfigError, match="must be int"):
        ServeSettings.from_arguments({"workers": "many"})


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
