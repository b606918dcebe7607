"""`onepass train` and `onepass eval`: flags made from the config's fields, and eval's report in the
shape of the package's metrics.json."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import onepass.train.loop
from onepass.cli import build_parser, main
from onepass.models import MultiTaskModel, open_package, save_package
from onepass.models.package import METRICS_FILE
from onepass.train.balancers import BALANCERS
from onepass.train.config import TrainConfig, options
from tests.tiny import tiny_config, write_random_dataset


def train_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["train"]


def test_there_is_a_flag_for_every_option_with_the_registries_choices(capsys):
    flags = {a.dest: a for a in train_parser()._actions}
    for option in options():
        assert option.key in flags, option.key
        assert flags[option.key].option_strings == ["--" + option.key.replace("_", "-")] or option.hint is bool
    assert set(flags["balancer"].choices) == set(BALANCERS)
    assert main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for name in BALANCERS:
        assert name in help_text, name
    for text in (
        "--no-augment",
        "--min-zoom",
        "--input-size HxW",
        "--lr-tasks",
        "optimizer options",
        "(default: 0.002)",
    ):
        assert text in help_text, text


def test_flags_override_the_file_and_set_overrides_both(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(onepass.train.loop, "train", lambda config, resume: made.append((config, resume)))
    (tmp_path / "c.yaml").write_text("data: d\nout: o\nlr: 0.01\nbatch_size: 8\nencoder: from-file\n")
    argv = ["train", "--config", str(tmp_path / "c.yaml"), "--lr", "0.02", "--no-augment", "--input-size", "64x96"]
    argv += ["--tasks", "semseg,depth", "--min-zoom", "0.5", "--lr-tasks", "{'depth': 4e-3}", "--set", "batch_size=4"]
    assert main([*argv, "--resume"]) == 0
    ((config, resume),) = made
    assert resume is True
    assert config == TrainConfig.from_mapping(
        {"data": "d", "out": "o", "lr": 0.02, "batch_size": 4, "encoder": "from-file", "augment": False,
         "input_size": (64, 96), "tasks": ("semseg", "depth"), "min_zoom": 0.5, "lr_tasks": {"depth": 4e-3}}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "semseg,dpeth"], "argument --tasks: unknown 'dpeth'; did you mean 'depth'?"),
        (["--architecture", "hsp"], "invalid choice 'hsp'; did you mean 'hps'?"),
        (["--lr-tasks", "depth=1"], "argument --lr-tasks: 'depth=1' must be a mapping"),
        (["--set", "lr=fast"], "training option lr: expected a number, got 'fast'"),
        (["--set", "balancer_options={'alpah': 1}", "--balancer", "gradnorm"], "has no option(s) ['alpah']"),
    ],
)
def test_bad_values_are_one_line_errors(argv, message, capsys):
    assert main(["train", "--data", "d", "--out", "o", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_the_eval_report_is_a_metrics_document_like_the_packages(tmp_path, capsys):
    torch.manual_seed(0)
    save_package(tmp_path / "pkg", MultiTaskModel(tiny_config()).eval(), "tiny")
    data = write_random_dataset(tmp_path / "d", n=3, size=(64, 96))
    (data / "synth.json").write_text(json.dumps({"seed": 5}))  # as `onepass data synth` leaves it
    assert main(["eval", str(tmp_path / "pkg"), "--data", str(data), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert list(report) == ["format", "version", "model", "data", "metrics", "baselines"]
    assert report["data"] == {"path": str(data), "images": 3, "synth": {"seed": 5}}
    (tmp_path / "pkg" / METRICS_FILE).write_text(json.dumps(report))  # the package's reader takes it as it is
    assert open_package(tmp_path / "pkg").metrics["metrics"] == report["metrics"]
