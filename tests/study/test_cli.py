"""`onepass study` on the command line: help, one-line errors with exit status 2 before any work, --plan."""

from __future__ import annotations

import pytest
import yaml

from onepass.cli import main
from tests.study.conftest import study_values


def test_help(capsys):
    assert main(["study", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: onepass study" in out and "--quick" in out and "--engine" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "onepass study: error: give --config FILE or --quick (one of them)"),
        (["--quick", "--config", "x.yaml"], "give --config FILE or --quick (one of them)"),
        (
            ["--quick", "--ray-address", "1.2.3.4:6379"],
            "--ray-address and --ray-cpus-per-run are options of --engine ray",
        ),
        (["--config", "nowhere.yaml"], "onepass study: error: nowhere.yaml: study config not found"),
        (["--quick", "--engine", "rya"], "invalid choice 'rya'; did you mean 'ray'?"),
        (["--quick", "--plan", "--interim"], "--plan, --report-only and --interim: give one of them"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(argv, message, capsys):
    assert main(["study", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_invalid_config_stops_before_any_run_or_rendering(tiny_data, tmp_path, capsys):
    values = study_values(tiny_data, tmp_path / "study", data={"synth": {"train": 8, "val": 4}})
    values["configurations"].append({"name": "late-typo", "balancer": "dwaa"})  # the last entry is wrong
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(values))
    assert main(["study", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: configuration 'late-typo': unknown balancer 'dwaa'; did you mean 'dwa'?" in err
    assert not (tmp_path / "study").exists()  # nothing rendered, nothing trained


def test_plan_lists_the_runs(tiny_data, tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study_values(tiny_data, tmp_path / "study")))
    assert main(["study", "--config", str(path), "--plan", "--out", str(tmp_path / "elsewhere")]) == 0
    out = capsys.readouterr().out
    assert "3 configurations x 3 seeds = 9 runs" in out and "single-depth: tasks depth, shared-fpn" in out
    assert f"every run: 2 steps of batch 4; runs in {tmp_path / 'elsewhere'}/runs/" in out
    assert not (tmp_path / "elsewhere").exists()
