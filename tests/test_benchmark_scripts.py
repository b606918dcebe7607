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
