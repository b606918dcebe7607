"""Every script in benchmarks/ starts: its imports resolve and its argument parser builds (`--help`);
a helper module there (no `__main__` block: stage_split.py) imports.

They run for minutes, so the suite does not run them; but an import left behind by a refactor (as
int8_knobs.py's `cpu_flags` was, after the CPU features moved to runtime/cpu.py) must fail here, not on
the one day a quiet VNNI machine is lent to measure with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def test_there_are_benchmark_scripts():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_starts(script):
    if '__name__ == "__main__"' in script.read_text():
        command = [sys.executable, str(script), "--help"]
    else:  # a module the scripts import, as they do: from their own folder
        command = [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(script.parent)!r}); import {script.stem}",
        ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if command[1] == str(script):
        assert "usage:" in done.stdout


def test_the_steady_rate_is_the_median_of_the_rounds_that_measured_something():
    import importlib

    sys.path.insert(0, str(SCRIPTS[0].parent))
    try:
        stage_split = importlib.import_module("stage_split")
    finally:
        sys.path.remove(str(SCRIPTS[0].parent))
    # (Predictor alone items/s, full run s, quarter run s): 300 of 400 items in (full - quarter) seconds
    rounds = [(100.0, 13.0, 10.0), (90.0, 16.0, 10.0), (110.0, 12.0, 10.0), (100.0, 10.2, 10.0)]
    rate = stage_split.steady_rate(rounds, 400, 100)
    assert rate.left_out == 1  # the last: full run within 0.5 s of the quarter run
    assert rate.steady_per_s == 100.0 and rate.predictor_per_s == 100.0 and rate.full_s == 13.0
    assert rate.ratios == (1.0, 50.0 / 90.0, 150.0 / 110.0)
    with pytest.raises(SystemExit, match="use more items"):
        stage_split.steady_rate([(100.0, 10.1, 10.0)], 400, 100)
