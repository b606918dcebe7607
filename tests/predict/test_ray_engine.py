"""`onepass predict --engine ray` on a local Ray: the same outputs, resume and errors as the local engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from onepass.cli import main
from tests.optional import require
from tests.predict.conftest import BAD, GOOD, MAX_PIXELS, check_outputs, read_errors, read_table, write_input_folder

ray = require("ray", "the ray extra: pip install 'onepass[ray]'")

FAST = ["--engine", "ray", "--backend", "torch", "--device", "cpu", "--no-progress", "--max-pixels", str(MAX_PIXELS)]


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local Ray for the module; runs in this process join it, subprocesses by its address."""
    context = ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def test_ray_run_killed_part_way_resumes_matches_the_predictor_and_reruns_skip(
    ray_cluster, tmp_path, predictor, capsys
):
    """One scenario, since every Ray run pays for starting its actors: a run killed part-way, its
    resumption, a check of every output against the Predictor, and a re-run that skips it all."""
    folder = write_input_folder(tmp_path / "frames", extra=60)
    out = tmp_path / "out"
    good = [*GOOD, *(f"many/{i:04d}.png" for i in range(60))]
    command = [sys.executable, "-m", "onepass", "predict", str(folder), "--out", str(out), "--batch-size", "2"]
    command += ["--ray-address", ray_cluster, "--visualize", *FAST]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    rows = 0
    while rows < 8 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
        table = out / "predictions.csv"
        rows = table.read_bytes().count(b"\n") - 1 if table.exists() else 0
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    killed = len(read_table(out))
    assert 8 <= killed < len(good)
    for path in out.rglob("*.png"):  # whatever is visible is whole: temporary files live in .tmp/
        if ".tmp" not in path.parts:
            Image.open(path).load()

    args = ["predict", str(folder), "--out", str(out), "--batch-size", "8", "--visualize", *FAST]
    assert main(args) == 1  # some inputs are bad
    assert (
        f"done {len(good) - killed}, skipped {killed} (already complete), failed {len(BAD)}" in capsys.readouterr().out
    )
    check_outputs(out, folder, predictor, good, panels=True)
    errors = read_errors(out)
    assert set(errors) == set(BAD) and "too large" in errors["big.png"] and "truncated" in errors["corrupt.png"]
    assert "not a readable image" in errors["notimage.jpg"]

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert main(args) == 1
    assert f"done 0, skipped {len(good)} (already complete), failed {len(BAD)}" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before  # nothing rewritten
    check_outputs(out, folder, predictor, good, panels=True)
