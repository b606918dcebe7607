"""What this CPU computes natively, read from /proc/cpuinfo: the facts `onepass.load`'s automatic
precision and the bench both ask.

The CPUs onepass runs on differ: some have AVX2 only, others AVX-512 VNNI and AVX512-BF16, a few
AMX. int8 pays only with VNNI (or AMX) and bf16 only with AVX512-BF16 or AMX; elsewhere bf16 matmuls
are emulated and slower than fp32.
"""

from __future__ import annotations

from pathlib import Path

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
