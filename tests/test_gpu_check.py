"""scripts/gpu_check.sh without a GPU: its arguments are parsed and checked, it refuses a machine
without a CUDA GPU in one line (exit 2), and a dry run shows every command and where results go."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def gpu_check(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *arguments], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--bogus"], "unknown argument '--bogus'"),
        (["--wheels"], "--wheels needs a folder of wheels"),
        (["--wheels", "/nonexistent/wheels"], "--wheels /nonexistent/wheels: not a folder"),
        (["--skip", "tests,nope"], "--skip: unknown part 'nope'"),
        (["--python", "/nonexistent/python"], "no /nonexistent/python here"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(arguments, message):
    result = gpu_check(*arguments)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_refuses_a_machine_without_a_cuda_gpu_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the script would run the whole check")
    result = gpu_check("--python", sys.executable)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "gpu_check.sh: no CUDA GPU here (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU\n"
    )


def test_a_dry_run_shows_each_part_and_where_results_go(tmp_path):
    result = gpu_check("--dry-run", "--out", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert any("pytest -x -q -m cuda" in c for c in commands)
    assert any("--backends torch --precisions fp32,bf16,fp16 --batch-sizes 1,8,32" in c for c in commands)
    assert any("--input-sizes 128x160,480x640" in c and "torch-compile" in c for c in commands)
    assert any("--source-size 128x160,480x640,1080x1920" in c for c in commands)
    assert any("pip install --no-deps --no-build-isolation -e ." in c for c in commands)
    for name in ("gpu-torch.json", "gpu-compile.json", "gpu-source-sizes.json"):
        assert f"--json {tmp_path / 'bench' / name}" in result.stdout
    assert "onepass.bench.report --out BENCHMARKS.md" in result.stdout
    assert not (tmp_path / "bench").exists()  # nothing was run
    skipped = gpu_check("--dry-run", "--skip", "bench,report")
    assert "onepass bench" not in skipped.stdout and "pytest" in skipped.stdout
