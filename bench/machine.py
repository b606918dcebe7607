"""What a bench ran on (machine, CPU features, versions, commit) and the roofline it is measured
against: a large matrix multiply's FLOP/s on the same device, in the same process, with the same
threads.

The CPUs these benches run on differ: some have AVX2 only, others AVX-512 VNNI and AVX512-BF16, a
few AMX. int8 pays only with VNNI (or AMX) and bf16 only with AVX512-BF16 or AMX, so the bench says
which it found and, by default, leaves out the precision a CPU would only emulate.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from onepass.bench.records import GpuRecord, MachineRecord, MatmulPeak, SourceRevision
from onepass.bench.timing import time_calls

CPU_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip
# what the bench prints, by the names the vendors use -> the /proc/cpuinfo flags that mean it
CPU_FEATURES = {
    "AVX2": ("avx2",),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-VNNI": ("avx_vnni",),
    "AVX512-BF16": ("avx512_bf16",),
    "AMX": ("amx_tile", "amx_bf16", "amx_int8"),
}
# precision -> (the flags of which any one makes it native on a CPU, what the CPU lacks otherwise)
NATIVE_UNITS = {
    "int8": (
        ("avx512_vnni", "avx_vnni", "amx_int8"),
        "this CPU has no VNNI (AVX-512 VNNI, AVX-VNNI) or AMX, so int8 would not run faster than fp32",
    ),
    "bf16": (("avx512_bf16", "amx_bf16"), "this CPU has no AMX / AVX512-BF16, so bf16 would be emulated"),
}
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


def cpu_features(flags: set[str] | tuple[str, ...]) -> dict[str, bool]:
    """{"AVX2": True, "AVX-512 VNNI": False, ...}: which of the features that matter here are present."""
    return {name: any(f in flags for f in wanted) for name, wanted in CPU_FEATURES.items()}


def features_text(flags: set[str] | tuple[str, ...]) -> str:
    """'AVX2 yes, AVX-512 VNNI no, ...', as the bench prints it."""
    if not flags:
        return "unknown (no /proc/cpuinfo flags)"
    return ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in cpu_features(flags).items())


def missing_cpu_units(precision: str) -> str | None:
    """Why `precision` would only be emulated (or gain nothing) on this CPU; None where it is native.
    Where the flags cannot be read, nothing is claimed missing."""
    if precision not in NATIVE_UNITS:
        return None
    flags = cpu_flags()
    wanted, reason = NATIVE_UNITS[precision]
    if not flags or any(f in flags for f in wanted):
        return None
    return reason


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16: without them bf16 matmuls are emulated and slower than fp32."""
    return bool(cpu_flags()) and missing_cpu_units("bf16") is None


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
        cpu_flags=tuple(sorted(cpu_flags() & set(CPU_FLAGS))),
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
    elif cpu_has_native_bf16():
        dtypes.append("bf16")
    return {dtype: matmul_peak(device, dtype, seconds=seconds) for dtype in dtypes}


def peak_for(precision: str, peaks: dict[str, MatmulPeak]) -> tuple[str, float] | None:
    """The ceiling a variant is compared with: its own precision's matmul peak where one was measured
    (fp16/bf16), else fp32's (int8 has no matmul peak here: fp32 is the stated reference)."""
    key = precision if precision in peaks else "fp32"
    if key not in peaks:
        return None
    return key, peaks[key].flops_per_s
