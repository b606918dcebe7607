"""`onepass predict` with the local engine, end to end, checked against the Predictor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onepass.cli import main
from onepass.models.package import open_package
from onepass.predict import job, outputs
from tests.predict import faults
from tests.predict.conftest import (
    BAD,
    GOOD,
    MAX_PIXELS,
    check_outputs,
    read_errors,
    read_table,
    visible_files,
    wait_for_rows,
    write_input_folder,
)

FAST = ["--backend", "torch", "--device", "cpu", "--no-progress", "--max-pixels", str(MAX_PIXELS)]
REPOSITORY = Path(__file__).resolve().parents[2]  # where `python -m tests.predict.paused_predict` runs


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
    listing.write_text("# frames to predict\na/frame0.png\n\na/b/deep.png\na/frame1.png\n")
    out = tmp_path / "out"
    args = ["predict", str(listing), str(input_folder / "g*.png"), "--out", str(out), "--format", "npz"]
    assert main([*args, "--tasks", "semseg,depth,people", "--workers", "1", *FAST]) == 0
    # keys: the list's paths below the folder its files share (a/), the glob's below its fixed folder
    sources = {"b/deep.png": input_folder / "a/b/deep.png", "frame0.png": input_folder / "a/frame0.png"}
    sources["frame1.png"] = input_folder / "a/frame1.png"  # the scene with people in it
    sources["gray.png"] = input_folder / "gray.png"
    check_outputs(
        out, input_folder, predictor, sources, tasks=("semseg", "depth", "people"), fmt="npz", sources=sources
    )
    settings = json.loads((out / "predict.json").read_text())
    assert settings["format"] == "onepass-predict" and settings["output_format"] == "npz"
    assert settings["tasks"] == ["semseg", "depth", "people"]


def test_maps_at_the_models_resolution(input_folder, tmp_path, predictor):
    out = tmp_path / "out"
    args = ["predict", str(input_folder / "a/frame0.png"), "--out", str(out), "--format", "npz", "--maps-at", "model"]
    assert main([*args, "--tasks", "semseg,depth,people", "--workers", "1", *FAST]) == 0
    height, width = predictor.config.input_size
    expected = predictor.predict(Image.open(input_folder / "a/frame0.png"), maps_at="model")[0]
    with np.load(out / "npz" / "frame0.npz") as arrays:
        assert arrays["semseg"].shape == arrays["depth"].shape == (height, width)
        assert (arrays["semseg"] == expected["semseg"]).mean() >= 0.999
        np.testing.assert_allclose(arrays["depth"], expected["depth"], atol=1e-4)
    assert json.loads((out / "predict.json").read_text())["maps_at"] == "model"
    assert main([*args[:-2], "--tasks", "semseg,depth,people", "--workers", "1", *FAST]) == 2  # another maps_at


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
        (["{folder}", "--compile", "--backend", "onnxruntime"], "--compile: the onnxruntime backend has no compile"),
        (["{folder}", "--visualize", "--maps-at", "model"], "--visualize draws the maps over each image"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(input_folder, tmp_path, capsys, arguments, message):
    arguments = [a.format(folder=input_folder) for a in arguments]
    assert main(["predict", *arguments, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_run_killed_part_way_resumes_with_every_output_exactly_once(tmp_path, predictor):
    folder = write_input_folder(tmp_path / "frames", extra=16)
    out = tmp_path / "out"
    good = [*GOOD, *(f"many/{i:04d}.png" for i in range(16))]
    # The run stops itself after 12 rows (tests/predict/paused_predict.py): killed part-way on any machine.
    command = [sys.executable, "-m", "tests.predict.paused_predict", "12", str(folder), "--out", str(out)]
    command += ["--batch-size", "2", "--workers", "1", "--visualize", *FAST]
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_rows(out, 12, process)
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


def test_a_full_disk_stops_the_run_in_one_line_keeps_what_is_done_and_resumes(
    input_folder, tmp_path, predictor, capsys, monkeypatch
):
    out = tmp_path / "out"
    args = ["predict", str(input_folder), "--out", str(out), "--batch-size", "2", "--workers", "1", *FAST]
    monkeypatch.setattr(job, "ResultWriter", faults.DiskFillsUp)  # the workers' image files stop fitting
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"onepass predict: error: {out}/") and "cannot write (No space left on device)" in err
    assert "complete so far are kept: fix this and run the same command again to resume" in err
    kept = read_table(out)
    assert 0 < len(kept) < len(GOOD)
    files = visible_files(out)
    assert not (out / ".tmp").exists() and ".lock" not in files  # no temporary file, no stale lock
    for row in kept:  # every committed image has all of its files, whole
        for task in ("semseg", "depth", "normals"):
            Image.open(out / task / row["image"].replace(".jpg", ".png")).load()
    monkeypatch.undo()

    monkeypatch.setattr(outputs, "os", faults.TableDiskFull(appends=2))  # now the table's disk fills up
    assert main(args) == 2
    assert f"{out / 'predictions.csv'}: cannot write (No space left on device)" in capsys.readouterr().err
    assert not (out / "predictions.csv").read_bytes().endswith(b"\n")  # half a row: dropped by the next run
    monkeypatch.undo()

    assert main(args) == 1  # space again: the run resumes, and only the bad inputs fail
    check_outputs(out, input_folder, predictor, GOOD)
    assert set(read_errors(out)) == set(BAD)


@pytest.mark.parametrize(
    ("earlier", "message"),
    [
        (None, "unknown precision 'int8'"),  # a new DIR: the backend refuses when the model loads
        ("same settings", "unknown precision 'int8'"),  # a DIR to resume: checked, locked, then refused
        ("other settings", "use the same options to resume"),
    ],
)
def test_a_refused_run_leaves_the_output_folder_as_it_was(input_folder, tmp_path, capsys, earlier, message):
    out = tmp_path / "runs" / "out"
    if earlier:
        package = open_package("default")
        model = {"name": package.name, "version": package.version}
        settings = {"format": "onepass-predict", "version": 1, "model": model, "output_format": "png"}
        settings["tasks"] = [t.name for t in package.config.tasks]
        if earlier == "other settings":
            settings["tasks"] = ["depth"]
        out.mkdir(parents=True)
        (out / "predict.json").write_text(json.dumps(settings))
        (out / "errors.jsonl").write_text('{"image": "x.png", "source": "x.png", "error": "from the last run"}\n')
    before = {p: p.read_bytes() for p in out.rglob("*")} if earlier else None
    assert main(["predict", str(input_folder), "--out", str(out), *FAST, "--precision", "int8"]) == 2
    assert message in capsys.readouterr().err
    if earlier:
        assert {p: p.read_bytes() for p in out.rglob("*")} == before  # errors.jsonl kept, no table, no lock
    else:
        assert not (tmp_path / "runs").exists()  # nor the folder above DIR that the run created


def test_progress_lines_without_a_terminal_and_no_rate_when_nothing_is_left(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (40, 30), (90, 60, 30)).save(frames / "one.png")
    args = ["predict", str(frames), "--out", str(tmp_path / "out"), "--workers", "1", "--backend", "torch"]
    assert main([*args, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "predict: 1/1 img in " in captured.err and "\r" not in captured.err  # a line, not a redrawn bar
    assert "images/s" in captured.out
    assert main([*args, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "done 0, skipped 1 (already complete), failed 0: nothing to do" in captured.out
    assert "images/s" not in captured.out and "predict:" not in captured.err  # no rate of nothing, no bar
