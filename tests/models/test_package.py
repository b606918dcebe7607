"""Model package: save/load round trip with identical outputs, clear errors, no pickle."""

from __future__ import annotations

import json

import pytest
import torch

from onepass.models import MultiTaskModel, PackageError, open_package, save_package
from onepass.models.package import CONFIG_FILE, WEIGHTS_FILE, default_package_path
from tests.tiny import tiny_config


@pytest.fixture
def saved(tmp_path):
    model = MultiTaskModel(tiny_config()).eval()
    # make BatchNorm statistics non-trivial, so a lost buffer would show
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 96) * 3 + 1)
    model.eval()
    save_package(tmp_path / "pkg", model, "tiny", version="7", training={"steps": 3})
    return model, tmp_path / "pkg"


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    package = open_package(path)
    assert (package.name, package.version, package.training) == ("tiny", "7", {"steps": 3})
    assert package.config == model.config
    loaded = package.load_model()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected, actual = model(x), loaded(x)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)


def test_package_files_and_no_pickle(saved):
    _, path = saved
    assert set(open_package(path).files()) == {CONFIG_FILE, WEIGHTS_FILE}
    assert not list(path.glob(".*")), "no temporary files left behind"
    assert (path / WEIGHTS_FILE).read_bytes()[8:9] == b"{"  # safetensors: 8-byte length, then a JSON header


def test_unknown_format_version_is_refused(saved):
    _, path = saved
    data = json.loads((path / CONFIG_FILE).read_text())
    data["format_version"] = 99
    (path / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(PackageError, match="format version 99 is not supported"):
        open_package(path)


def test_missing_files_are_named(saved, tmp_path):
    _, path = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(PackageError, match="weights.safetensors: missing"):
        open_package(path).load_model()
    with pytest.raises(PackageError, match="not a model package directory"):
        open_package(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="onepass.json: missing"):
        open_package(tmp_path / "empty")


def test_weights_that_do_not_fit_the_config_are_refused(saved):
    _, path = saved
    data = json.loads((path / CONFIG_FILE).read_text())
    data["model"]["decoder_channels"] = 8
    (path / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(PackageError, match="do not match the architecture"):
        open_package(path).load_model()


def test_default_package_resolves_inside_the_installed_package():
    assert default_package_path().name == "default_model"
    assert default_package_path().parent.name == "onepass"
