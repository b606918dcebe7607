"""Model package: save/load round trip with identical outputs, clear errors, no pickle, file modes
from the umask, one parameter count."""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from onepass.cli import main
from onepass.models import MultiTaskModel, PackageError, open_package, save_package
from onepass.models.package import (
    CONFIG_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    default_package_path,
    save_metrics,
    write_json_atomic,
    write_metrics,
)
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


def file_modes(path: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}


@contextlib.contextmanager
def umask(value: int):
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def test_every_file_of_a_saved_and_exported_package_is_0644_under_umask_022(tmp_path):
    with umask(0o022):
        save_package(tmp_path / "pkg", MultiTaskModel(tiny_config()).eval(), "tiny")
        save_metrics(tmp_path / "pkg", {"semseg": {"miou": 0.5}}, {"path": "somewhere", "images": 3})
        assert main(["export", str(tmp_path / "pkg")]) == 0  # model.onnx and exports.json
    files = file_modes(tmp_path / "pkg")
    assert set(files) == {CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, "model.onnx", "exports.json"}
    assert files == dict.fromkeys(files, 0o644)  # weights.safetensors was 0600


@pytest.mark.parametrize(("mask", "mode"), [(0o077, 0o600), (0o002, 0o664)])
def test_package_files_follow_any_umask(tmp_path, mask, mode):
    """Every package file is written through atomic_path (export's model.onnx and exports.json too)."""
    with umask(mask):
        save_package(tmp_path / "pkg", MultiTaskModel(tiny_config()).eval(), "tiny")
        save_metrics(tmp_path / "pkg", {"semseg": {"miou": 0.5}}, {"path": "somewhere", "images": 3})
        write_json_atomic(tmp_path / "pkg" / "exports.json", {})
    files = file_modes(tmp_path / "pkg")
    assert files == dict.fromkeys([CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, "exports.json"], mode)


def test_parameter_count_is_learnable_parameters_without_batchnorm_statistics(saved):
    model, path = saved
    package = open_package(path)
    buffers = sum(b.numel() for b in model.buffers())  # BatchNorm running means, variances, counters
    assert buffers > 0
    with safe_open(path / WEIGHTS_FILE, "pt") as weights:
        stored = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    assert package.parameter_count() == stored - buffers == sum(p.numel() for p in model.parameters())


def test_the_readme_states_the_shipped_models_parameter_count():
    count = open_package("default").parameter_count()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"{count / 1e6:.2f} M parameters" in " ".join(readme.split())


OFFLINE_LOAD = """
import socket, sys

def refuse(*args, **kwargs):
    raise OSError("this test blocks network access")

class NoSocket(socket.socket):  # a class still: ssl subclasses socket.socket when it is imported
    __init__ = refuse

socket.socket = NoSocket  # every connection (HTTP, and DNS over TCP) makes a socket.socket
socket.create_connection = socket.getaddrinfo = refuse

import numpy as np
import torch

import onepass

torch.set_num_threads(2)
images = np.load(sys.argv[1])
outputs = {}
for i, path in enumerate(sys.argv[3:]):
    for name, value in onepass.load(path, backend="torch", device="cpu").backend.run(images).items():
        outputs[f"{i}/{name}"] = value
np.savez(sys.argv[2], **outputs)
"""


def test_a_package_trained_from_pretrained_weights_loads_offline(tmp_path, monkeypatch):
    """`pretrained` is training provenance: loading the package (or an older one that saved it in its
    model section) never asks timm for pretrained weights, so it works without a network."""
    import shutil
    import subprocess
    import sys

    import numpy as np
    import timm
    from safetensors.torch import load_file, save_file

    from onepass.train.config import TrainConfig
    from onepass.train.loop import Trainer
    from tests.tiny import TINY_ENCODER, write_random_dataset

    torch.manual_seed(1)
    pretrained = {k: v.contiguous() for k, v in timm.create_model(TINY_ENCODER).state_dict().items()}
    save_file(pretrained, tmp_path / "pretrained.safetensors")
    create_model = timm.create_model

    def from_local_file(*args, **kwargs):  # timm's way to take "pretrained" weights from a file
        return create_model(*args, **kwargs, pretrained_cfg_overlay={"file": str(tmp_path / "pretrained.safetensors")})

    monkeypatch.setattr(timm, "create_model", from_local_file)
    data = write_random_dataset(tmp_path / "data", n=4, size=(64, 96))
    config = TrainConfig.from_mapping(dict(
        data=str(data), out=str(tmp_path / "pkg"), encoder=TINY_ENCODER, decoder_channels=16, input_size=(64, 96),
        pretrained=True, steps=1, batch_size=4, num_workers=0, lr=1e-7, device="cpu",
    ))  # fmt: skip
    Trainer(config, progress=False).fit()
    monkeypatch.undo()

    saved = json.loads((tmp_path / "pkg" / CONFIG_FILE).read_text())
    assert "pretrained" not in saved["model"] and saved["training"]["config"]["pretrained"] is True
    weights = load_file(tmp_path / "pkg" / WEIGHTS_FILE)
    convs = [k for k, v in pretrained.items() if v.ndim == 4 and f"encoder.backbone.{k}" in weights]
    assert len(convs) > 5  # trained from the file's weights (one step at lr 1e-7 barely moves them)
    for key in convs:
        torch.testing.assert_close(weights[f"encoder.backbone.{key}"], pretrained[key], rtol=0, atol=1e-5)

    shutil.copytree(tmp_path / "pkg", tmp_path / "older")  # an older package saved "pretrained" in its model section
    older = json.loads((tmp_path / "older" / CONFIG_FILE).read_text())
    older["model"]["pretrained"] = True
    (tmp_path / "older" / CONFIG_FILE).write_text(json.dumps(older))

    images = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    import onepass

    expected = onepass.load(tmp_path / "pkg", backend="torch", device="cpu").backend.run(images)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-c", OFFLINE_LOAD, str(tmp_path / "images.npy"), str(tmp_path / "out.npz")]
    result = subprocess.run(
        [*argv, str(tmp_path / "pkg"), str(tmp_path / "older")], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    offline = np.load(tmp_path / "out.npz")
    for i in range(2):
        for name, value in expected.items():
            np.testing.assert_array_equal(offline[f"{i}/{name}"], value)


def test_the_metrics_document_leaves_out_what_the_data_left_undefined_and_is_strict_json(tmp_path):
    metrics = {"semseg": {"miou": 0.5, "pixel_acc": math.nan}, "depth": {"rmse": math.nan}}
    baselines = {"trivial": {"semseg": {"miou": math.nan, "pixel_acc": 0.2}}}
    write_metrics(tmp_path / "m.json", metrics, {"path": "x", "images": 0}, baselines, delta_mtl=math.nan)
    document = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert document["metrics"] == {"semseg": {"miou": 0.5}, "depth": {}}
    assert document["baselines"] == {"trivial": {"semseg": {"pixel_acc": 0.2}}} and "delta_mtl" not in document
    with pytest.raises(ValueError, match="JSON compliant"):  # anything else non-finite is an error
        write_metrics(tmp_path / "m.json", {"semseg": {"miou": math.inf}}, {"path": "x", "images": 1})
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["semseg"] == {"miou": 0.5}  # the old file stays
