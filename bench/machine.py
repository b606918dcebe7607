"""What a bench ran on (machine, versions, commit) and the roofline it is measured against: a large
matrix multiply's FLOP/s on the same device, in the same process, with the same threads."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
VERSIONED = ("onepass", "torch", "timm", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "bentoml")


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16: without them bf16 matmuls are emulated and slower than fp32."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


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


def describe_machine(device: str) -> dict[str, Any]:
    """Machine, software versions and source revision, recorded beside every result."""
    import psutil

    machine: dict[str, Any] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_flags": sorted(cpu_flags() & set(CPU_FLAGS)),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        machine["gpu"] = {
            "name": props.name,
            "memory_bytes": props.total_memory,
            "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
        }
    return machine


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


def source_revision() -> dict[str, Any] | None:
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
    return {"commit": commit, "local_changes": bool(dirty)}


def matmul_peak(device: str, dtype: str, n: int | None = None, seconds: float = 1.0) -> dict[str, Any]:
    """Best FLOP/s of an (n, n) @ (n, n) matmul over at least `seconds` (at least 3 runs): the
    practical compute ceiling that a model's achieved FLOP/s is compared with."""
    import torch

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    cuda = device.startswith("cuda")
    n = n or (8192 if cuda else 2048)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch_dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=torch_dtype, generator=generator)

    def once() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    once()  # warm-up: allocation, kernel choice
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - began < seconds:
        times.append(once())
    best = min(times)
    return {
        "dtype": dtype,
        "n": n,
        "runs": len(times),
        "flops_per_s": 2 * n**3 / best,
        "threads": None if cuda else torch.get_num_threads(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if cuda and dtype == "fp32" else None,
    }


def roofline(device: str, seconds: float = 1.0) -> dict[str, dict[str, Any]]:
    """Matmul peaks for the precisions this device computes natively (fp32 always; bf16 on CPUs
    with AMX / AVX512-BF16; fp16 and bf16 on CUDA)."""
    dtypes = ["fp32"]
    if device.startswith("cuda"):
        dtypes += ["fp16", "bf16"]
    elif cpu_has_native_bf16():
        dtypes.append("bf16")
    return {dtype: matmul_peak(device, dtype, seconds=seconds) for dtype in dtypes}


def peak_for(precision: str, peaks: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """The ceiling a variant is compared with: its own precision's matmul peak where one was measured
    (fp16/bf16), else fp32's (int8 has no matmul peak here: fp32 is the stated reference)."""
    key = precision if precision in peaks else "fp32"
    if key not in peaks:
        return None
    return key, peaks[key]["flops_per_s"]
