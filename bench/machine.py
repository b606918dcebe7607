"""What a bench ran on (machine, CPU features, versions, commit) and the roofline it is measured
against: a large matrix multiply's FLOP/s on the same device, in the same process, with the same
threads.

The CPU's features come from runtime/cpu.py: the bench says which it found and, by default, leaves
out the precision a CPU would only emulate.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from onepass.bench.records import GpuRecord, MachineRecord, MatmulPeak, SourceRevision
from onepass.bench.timing import time_calls
from onepass.runtime import cpu

VERSIONED = ("onepass", "torch", "timm", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "bentoml")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_machine(device: str) -> MachineRecord:
    """Machine, CPU features and (on CUDA) the GPU, recorded beside every result."""
    import psutil

    gpu = None
    if device.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        gpu = GpuRecord(props.name, props.total_memory, f"{props.major}.{props.minor}", torch.version.cuda)
    return MachineRecord(
        hostname=platform.node(),
        os=platform.platform(),
        cpu=cpu_model(),
        logical_cores=os.cpu_count(),
        usable_cores=usable_cores(),
        cpu_flags=tuple(sorted(cpu.cpu_flags() & set(cpu.CPU_FLAGS))),
        memory_bytes=psutil.virtual_memory().total,
        load_average=tuple(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        gpu=gpu,
    )


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import onnxruntime

        found["onnxruntime_providers"] = ", ".join(onnxruntime.get_available_providers())
    except ImportError:
        pass
    return found


def source_revision() -> SourceRevision | None:
    """The git commit of the onepass source (and whether it had local changes), if it is a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return SourceRevision(commit, bool(dirty))


def matmul_peak(device: str, dtype: str, n: int | None = None, seconds: float = 1.0) -> MatmulPeak:
    """Best FLOP/s of an (n, n) @ (n, n) matmul over at least `seconds` (at least 3 runs, after one
    warm-up): the practical compute ceiling that a model's achieved FLOP/s is compared with."""
    import torch

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    cuda = device.startswith("cuda")
    n = n or (8192 if cuda else 2048)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch_dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=torch_dtype, generator=generator)

    def once() -> None:
        if cuda:
            torch.cuda.synchronize(device)
        torch.mm(a, b)
        if cuda:
            torch.cuda.synchronize(device)

    timing = time_calls(once, warmup=1, runs=3, seconds=seconds)  # warm-up: allocation, kernel choice
    return MatmulPeak(
        dtype=dtype,
        n=n,
        runs=timing.latency.n,
        flops_per_s=2 * n**3 / (timing.latency.min / 1e3),
        threads=None if cuda else torch.get_num_threads(),
        tf32=bool(torch.backends.cuda.matmul.allow_tf32) if cuda and dtype == "fp32" else None,
    )


def roofline(device: str, seconds: float = 1.0) -> dict[str, MatmulPeak]:
    """Matmul peaks for the precisions this device computes natively (fp32 always; bf16 on CPUs
    with AMX / AVX512-BF16; fp16 and bf16 on CUDA)."""
    dtypes = ["fp32"]
    if device.startswith("cuda"):
        dtypes += ["fp16", "bf16"]
    elif cpu.cpu_has_native_bf16():
        dtypes.append("bf16")
    return {dtype: matmul_peak(device, dtype, seconds=seconds) for dtype in dtypes}


def peak_for(precision: str, peaks: dict[str, MatmulPeak]) -> tuple[str, float] | None:
    """The ceiling a variant is compared with: its own precision's matmul peak where one was measured
    (fp16/bf16), else fp32's (int8 has no matmul peak here: fp32 is the stated reference)."""
    key = precision if precision in peaks else "fp32"
    if key not in peaks:
        return None
    return key, peaks[key].flops_per_s
