"""`onepass predict` with the local engine, end to end, checked against the Predictor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from onepass.cli import main
from tests.predict.conftest import BAD, GOOD, MAX_PIXELS, check_outputs, read_errors, read_table, write_input_folder

FAST = ["--backend", "torch", "--device", "cpu", "--no-progress", "--max-pixels", str(MAX_PIXELS)]


def test_folder_outputs_match_the_predictor_and_a_rerun_skips_them(input_folder, tmp_path, predictor, capsys):
    out = tmp_path / "out"
    args = [str(input_folder), "--out", str(out), "--visualize", "--batch-size", "3", "--workers", "2", *FAST]
    assert main(["predict", *args]) == 1  # some inputs failed
    printed = capsys.readouterr().out
    assert f"done {len(GOOD)}, skipped 0 (already complete), failed {len(BAD)}" in printed
    check_outputs(out, input_folder, predictor, GOOD, panels=True)
    errors = read_errors(out)
    assert set(errors) == set(BAD)
    assert "too large" in errors["big.png"] and "120x120" in errors["big.png"]
    assert "truncated" in errors["corrupt.png"]
    assert "not a readable image" in errors["notimage.jpg"]
    assert [r["image"] for r in read_table(out) if r["image"] == "rotated.jpg"]  # EXIF turned: 30 wide, 50 high
    assert {(r["height"], r["width"]) for r in read_table(out) if r["image"] == "rotated.jpg"} == {("30", "50")}

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert main(["predict", *args]) == 1  # the bad inputs are tried again, and fail again
    printed = capsys.readouterr().out
    assert f"done 0, skipped {len(GOOD)} (already complete), failed {len(BAD)}" in printed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before  # nothing rewritten
    check_outputs(out, input_folder, predictor, GOOD, panels=True)
    assert set(read_errors(out)) == set(BAD)  # errors.jsonl describes the latest run, once each


def test_npz_of_chosen_tasks_from_a_list_and_a_glob(input_folder, tmp_path, predictor):
    listing = input_folder / "list.txt"
    listing.write_text("# frames to predict\na/frame0.png\n\na/b/deep.png\n")
    out = tmp_path / "out"
    args = ["predict", str(listing), str(input_folder / "g*.png"), "--out", str(out), "--format", "npz"]
    assert main([*args, "--tasks", "semseg,depth,attributes", "--workers", "1", *FAST]) == 0
    # keys: the list's paths below the folder its files share (a/), the glob's below its fixed folder
    sources = {"b/deep.png": input_folder / "a/b/deep.png", "frame0.png": input_folder / "a/frame0.png"}
    sources["gray.png"] = input_folder / "gray.png"
    check_outputs(
        out, input_folder, predictor, sources, tasks=("semseg", "depth", "attributes"), fmt="npz", sources=sources
    )
    settings = json.loads((out / "predict.json").read_text())
    assert settings["format"] == "onepass-predict" and settings["output_format"] == "npz"
    assert settings["tasks"] == ["semseg", "depth", "attributes"]


def test_a_rerun_with_other_settings_is_refused(input_folder, tmp_path, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "predict.json").write_text(
        json.dumps({"format": "onepass-predict", "version": 1, "model": {}, "tasks": ["depth"], "output_format": "png"})
    )
    assert main(["predict", str(input_folder), "--out", str(out), *FAST]) == 2
    assert "use the same options to resume, or another --out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing-folder"], "missing-folder: matches no file"),
        (["{folder}", "--tasks", "semseg,deph"], "unknown task 'deph'; did you mean 'depth'?"),
        (["{folder}", "--backend", "tensorrtt"], "unknown backend 'tensorrtt'; did you mean 'tensorrt'?"),
        (["{folder}", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(input_folder, tmp_path, capsys, arguments, message):
    arguments = [a.format(folder=input_folder) for a in arguments]
    assert main(["predict", *arguments, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_run_killed_part_way_resumes_with_every_output_exactly_once(tmp_path, predictor):
    folder = write_input_folder(tmp_path / "frames", extra=80)
    out = tmp_path / "out"
    good = [*GOOD, *(f"many/{i:04d}.png" for i in range(80))]
    command = [sys.executable, "-m", "onepass", "predict", str(folder), "--out", str(out), "--batch-size", "2"]
    command += ["--workers", "1", "--visualize", *FAST]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    rows = 0
    while rows < 12 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
        table = out / "predictions.csv"
        rows = table.read_bytes().count(b"\n") - 1 if table.exists() else 0
    assert process.poll() is None, process.stderr.read().decode()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    time.sleep(1.0)  # the workers notice within 0.2 s; after that nothing under DIR may change
    snapshot = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    time.sleep(1.0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == snapshot  # no writer outlived the run
    killed_rows = read_table(out)
    assert 12 <= len(killed_rows) < len(good)  # killed part-way
    for path in out.rglob("*.png"):  # whatever is visible is whole: temporary files live in .tmp/
        if ".tmp" not in path.parts:
            Image.open(path).load()

    assert (
        main(["predict", str(folder), "--out", str(out), "--batch-size", "4", "--workers", "2", "--visualize", *FAST])
        == 1
    )
    check_outputs(out, folder, predictor, good, panels=True)
    assert not (out / ".tmp").exists()
