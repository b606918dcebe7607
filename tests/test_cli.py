"""The `onepass` command: subcommands work end to end and user errors print one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import onepass
from onepass.cli import main
from onepass.models import MultiTaskModel, save_package
from onepass.models.package import save_metrics
from onepass.models.panel import panel_width, tile_size
from onepass.models.tasks import SemsegTask
from tests.tiny import CLASSES, tiny_config, write_random_dataset

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def package(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "pkg"
    save_package(path, MultiTaskModel(tiny_config()).eval(), "tiny")
    return path


def test_info_lists_tasks_classes_and_files(package, capsys):
    save_metrics(package, {"semseg": {"miou": 0.5}}, {"path": "somewhere", "images": 3})
    assert main(["info", str(package)]) == 0
    out = capsys.readouterr().out
    for text in (
        "tiny",
        "test_efficientnet",
        "64x96",
        "floor, wall, person",
        "people: 0/1/2",
        "attr_facing",
        "weights.safetensors",
        "miou",
        "trained on not recorded",  # the model card: this package has no training provenance
        "evaluated on 3 held-out images of somewhere",
    ):
        assert text in out, text


def test_info_of_the_shipped_model_says_it_knows_only_synthetic_scenes(capsys):
    assert main(["info"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    for text in ("trained on 4,440 synthetic scenes", "not meaningful", "real camera frames", "onepass train --data"):
        assert text in out, text


def test_eval_prints_table_writes_json_and_delta_mtl(package, tmp_path, capsys):
    data = write_random_dataset(tmp_path / "d", n=4, size=(64, 96))
    assert (
        main(["eval", str(package), "--data", str(data), "--json", str(tmp_path / "e.json"), "--visualize", "3"]) == 0
    )
    report = json.loads((tmp_path / "e.json").read_text())
    with Image.open(tmp_path / "e.png") as picture:  # 3 rows of input + truth/prediction for 3 dense tasks
        height, width = tile_size(64, 96)
        assert picture.width == panel_width(width, 7, text=True) and picture.height > 3 * height
    assert set(report["metrics"]) == {"semseg", "depth", "normals", "attributes"}
    assert report["data"]["images"] == 4
    # the model as its own baseline: Δ_MTL is exactly 0
    baselines = []
    for task in report["metrics"]:
        path = tmp_path / f"{task}.json"
        path.write_text(json.dumps({"metrics": {task: report["metrics"][task]}}))
        baselines.append(f"{task}={path}")
    assert (
        main(["eval", str(package), "--data", str(data), "--json", str(tmp_path / "f.json"), "--baseline", *baselines])
        == 0
    )
    assert json.loads((tmp_path / "f.json").read_text())["delta_mtl"] == pytest.approx(0.0)
    assert "Δ_MTL = +0.00 %" in capsys.readouterr().out


def test_single_task_package_evaluates_on_a_multi_task_dataset(tmp_path):
    path = tmp_path / "st"
    save_package(path, MultiTaskModel(tiny_config(tasks=(SemsegTask(CLASSES),))), "st")
    data = write_random_dataset(tmp_path / "d", n=2, size=(64, 96))
    assert main(["eval", str(path), "--data", str(data), "--json", str(tmp_path / "st.json")]) == 0
    assert list(json.loads((tmp_path / "st.json").read_text())["metrics"]) == ["semseg"]  # depth labels unread


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "/nonexistent/pkg"], "not a model package directory"),
        (["eval", "/nonexistent/pkg", "--data", "x"], "not a model package directory"),
        (["train", "--data", "/nonexistent/data", "--out", "o"], "dataset folder does not exist"),
        (["train", "--data", "d", "--out", "o", "--balancer", "gradnrom"], "did you mean 'gradnorm'"),
        (["train", "--data", "d", "--out", "o", "--set", "lr"], "must look like key=value"),
    ],
)
def test_user_errors_are_one_line_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "onepass", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "data" in result.stdout and "train" in result.stdout


def test_a_reader_that_stops_reading_ends_the_command_without_a_traceback():
    """`onepass study --plan | head -1`: the pipe closes while the command prints (here before it starts)."""
    command = [sys.executable, "-m", "onepass", "study", "--config", "configs/study.yaml", "--plan"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPOSITORY)
    process.stdout.close()  # the child is still importing: every line it prints meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"onepass {onepass.__version__}\n"


HEAVY = ("torch", "numpy", "PIL", "onnx", "onnxruntime", "bentoml", "timm", "safetensors", "ray", "rich", "tqdm")


def test_building_the_parser_imports_nothing_heavy():
    """What makes `onepass --help` (and every subcommand's) answer at once: no heavy import at parse time."""
    script = (
        "import json, sys; from onepass.cli import build_parser; build_parser(); print(json.dumps(list(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_every_command_has_help(capsys):
    commands = ["data", "data synth", "train", "eval", "calibrate", "export", "info", "serve", "predict", "bench"]
    for command in commands:
        assert main([*command.split(), "--help"]) == 0, command
        assert f"usage: onepass {command}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trian"], "onepass: error: unknown command 'trian'; did you mean 'train'?"),
        (["data", "snyth"], "onepass data: error: unknown command 'snyth'; did you mean 'synth'?"),
        (["predict", "x", "--out", "o", "--format", "pgn"], "invalid choice 'pgn'; did you mean 'png'?"),
        (["train", "--dta", "d"], "onepass train: error: unrecognized arguments: --dta d; did you mean '--data'?"),
        (["train", "--out", "o"], "onepass train: error: --data is required (or set data in the --config file)"),
        (["eval", "m"], "onepass eval: error: the following arguments are required: --data"),
        ([], "onepass: error: the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_resume_refusal_shows_the_checkpoints_value_and_progress_stays_out_of_logs(random_dataset, tmp_path, capsys):
    out = tmp_path / "pkg"
    args = ["train", "--data", str(random_dataset), "--out", str(out), "--encoder", "test_efficientnet"]
    args += ["--input-size", "64x96", "--batch-size", "4", "--steps", "2", "--num-workers", "0", "--lr", "0.001"]
    assert main(args) == 0
    err = capsys.readouterr().err  # not a terminal here: plain lines, no redrawn bar
    assert "train: 2/2 step in " in err and "\r" not in err
    assert main([*args[:-1], "0.5", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume with a different lr 0.5 (the checkpoint's: 0.001)" in err and err.count("\n") == 1


def test_info_counts_learnable_parameters_as_the_readme_does(capsys):
    assert main(["info"]) == 0  # the shipped model: 1,670,071 parameters, and 23,734 BatchNorm statistics
    assert "1.67 M parameters" in " ".join(capsys.readouterr().out.split())  # rich may wrap the line
