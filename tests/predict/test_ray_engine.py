"""`onepass predict --engine ray` on a local Ray: the same outputs, resume and errors as the local engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from onepass.cli import main
from onepass.predict.outputs import WriteError
from tests.optional import require
from tests.predict.conftest import (
    BAD,
    GOOD,
    MAX_PIXELS,
    check_outputs,
    read_errors,
    read_table,
    wait_for_rows,
    write_input_folder,
)

# A single-machine Ray keeps every address on loopback only with this switch: otherwise Ray turns a
# node address of 127.0.0.1 into this machine's outward one (ray._private.services.resolve_ip_for_localhost),
# and the tests' traffic would leave loopback. Ray reads it when it is imported (so before `require`);
# the Ray processes and the subprocesses the tests start inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = require("ray", "the ray extra: pip install 'onepass[ray]'")

LOOPBACK = "127.0.0.1"
FAST = ["--engine", "ray", "--backend", "torch", "--device", "cpu", "--no-progress", "--max-pixels", str(MAX_PIXELS)]
REPOSITORY = Path(__file__).resolve().parents[2]  # where `python -m tests.predict.paused_predict` runs


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local Ray for the module, on loopback; runs in this process join it, subprocesses by
    its address."""
    from ray._private import ray_constants

    assert not ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before this module set its loopback switch"
    context = ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, _node_ip_address=LOOPBACK)
    address = context.address_info["gcs_address"]
    assert address.startswith(f"{LOOPBACK}:") and context.address_info["node_ip_address"] == LOOPBACK
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOOPBACK}
    yield address
    ray.shutdown()


def test_ray_run_killed_part_way_resumes_matches_the_predictor_and_reruns_skip(
    ray_cluster, tmp_path, predictor, capsys
):
    """One scenario, since every Ray run pays for starting its actors: a run killed part-way, its
    resumption, a check of every output against the Predictor, and a re-run that skips it all."""
    folder = write_input_folder(tmp_path / "frames", extra=16)
    out = tmp_path / "out"
    good = [*GOOD, *(f"many/{i:04d}.png" for i in range(16))]
    # The run stops itself after 8 rows (tests/predict/paused_predict.py): killed part-way on any machine.
    command = [sys.executable, "-m", "tests.predict.paused_predict", "8", str(folder), "--out", str(out)]
    command += ["--batch-size", "2", "--ray-address", ray_cluster, "--visualize", *FAST]
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_rows(out, 8, process)
    assert ray_cluster.startswith(f"{LOOPBACK}:")  # the address the subprocess joined
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    killed = len(read_table(out))
    assert 8 <= killed < len(good)
    for path in out.rglob("*.png"):  # whatever is visible is whole: temporary files live in .tmp/
        if ".tmp" not in path.parts:
            Image.open(path).load()

    args = ["predict", str(folder), "--out", str(out), "--batch-size", "8", "--visualize", *FAST]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 1  # some inputs are bad
    deprecated = [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not [m for m in deprecated if "ray" in m.lower()], deprecated  # only Ray Data's supported API
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


def test_a_onepass_error_in_a_ray_task_comes_back_as_itself():
    """A failed write in a Ray worker reaches the CLI as the one-line WriteError, not Ray's traceback."""
    from onepass.predict.ray_engine import onepass_cause

    original = WriteError("out/semseg/a.png: cannot write (No space left on device)")
    task_error = ray.exceptions.RayTaskError("_write_batch", "Traceback ...\nOSError: ...", original)
    wrapped = task_error.as_instanceof_cause()  # what iterating the dataset raises: a RayTaskError(WriteError)
    assert isinstance(wrapped, WriteError) and str(wrapped) != str(original)
    try:
        raise RuntimeError("Ray Data's own wrapper") from wrapped
    except RuntimeError as outer:
        assert onepass_cause(outer) is original
    assert onepass_cause(ValueError("not onepass's")) is None
