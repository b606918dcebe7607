"""Δ_MTL, the trivial baselines, and the training config."""

from __future__ import annotations

import pytest

from onepass.errors import ConfigError
from onepass.models.tasks import DepthTask, SemsegTask
from onepass.train.config import TrainConfig, parse_overrides, read_config_file
from onepass.train.evaluate import delta_mtl


def test_delta_mtl_by_hand():
    tasks = (SemsegTask(("a", "b")), DepthTask())
    baselines = {
        "semseg": {"miou": 0.50, "pixel_acc": 0.80},
        "depth": {"abs_err": 1.0, "abs_rel": 0.2, "rmse": 2.0, "delta1": 50.0},
    }
    results = {
        "semseg": {"miou": 0.55, "pixel_acc": 0.80},
        "depth": {"abs_err": 0.9, "abs_rel": 0.2, "rmse": 2.2, "delta1": 50.0},
    }
    semseg = (10.0 + 0.0) / 2  # +10 % mIoU
    depth = (10.0 + 0.0 - 10.0 + 0.0) / 4  # lower abs_err is better (+10), higher rmse is worse (-10)
    assert delta_mtl(results, baselines, tasks) == pytest.approx((semseg + depth) / 2)
    assert delta_mtl(baselines, baselines, tasks) == 0.0


def test_delta_mtl_needs_every_task():
    with pytest.raises(KeyError, match="depth"):
        delta_mtl({"semseg": {"miou": 1}}, {"semseg": {"miou": 1}}, (SemsegTask(("a", "b")), DepthTask()))


def test_config_files_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("data: d\nout: o\nlr: 0.01\ntasks: [semseg, depth]\ninput_size: [64, 96]\n")
    (tmp_path / "c.toml").write_text(
        'data = "d"\nout = "o"\nlr = 0.01\ntasks = ["semseg", "depth"]\ninput_size = [64, 96]\n'
    )
    yaml_config = TrainConfig.from_mapping(read_config_file(tmp_path / "c.yaml"))
    toml_config = TrainConfig.from_mapping(read_config_file(tmp_path / "c.toml"))
    assert yaml_config == toml_config
    assert yaml_config.model.tasks == ("semseg", "depth") and yaml_config.model.input_size == (64, 96)
    assert parse_overrides(["lr=1e-3", "lr_tasks={'depth': 0.1}", "balancer=dwa"]) == {
        "lr": 1e-3, "lr_tasks": {"depth": 0.1}, "balancer": "dwa"
    }  # fmt: skip


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        TrainConfig.from_mapping({"data": "d", "out": "o", "batchsize": 3})
    with pytest.raises(ConfigError, match="did you mean 'adamw'"):
        TrainConfig.from_mapping({"data": "d", "out": "o", "optimizer": "adamv"})
    with pytest.raises(ConfigError, match="lr_tasks names \\['edges'\\]"):
        TrainConfig.from_mapping({"data": "d", "out": "o", "lr_tasks": {"edges": 0.1}})
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_overrides(["lr"])
    with pytest.raises(ConfigError, match="config files are .yaml, .yml or .toml"):
        (tmp_path / "c.ini").write_text("x")
        read_config_file(tmp_path / "c.ini")
