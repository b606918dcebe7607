"""CPU features: the bench names what it found and, by default, leaves out the precision a CPU lacks
the units for (int8 without VNNI, bf16 without AVX512-BF16 / AMX), with the reason."""

from __future__ import annotations

import pytest

from onepass.bench import machine
from onepass.bench.plan import BenchSettings, plan_variants
from onepass.runtime import cpu

AVX2_ONLY = {"avx2", "fma", "sse4_2"}
VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}
SAPPHIRE_RAPIDS = VNNI | {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}


def test_features_text_names_each_feature():
    assert cpu.features_text(AVX2_ONLY) == "AVX2 yes, AVX-512 VNNI no, AVX-VNNI no, AVX512-BF16 no, AMX no"
    assert cpu.cpu_features(SAPPHIRE_RAPIDS) == dict.fromkeys(cpu.CPU_FEATURES, True) | {"AVX-VNNI": False}
    assert "unknown" in cpu.features_text(set())


@pytest.mark.parametrize(
    "flags, int8, bf16",
    [
        (AVX2_ONLY, False, False),
        (VNNI, True, False),
        ({"avx2", "avx_vnni"}, True, False),
        (SAPPHIRE_RAPIDS, True, True),
    ],
)
def test_default_cpu_plan_follows_the_cpu(monkeypatch, flags, int8, bf16):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: set(flags))
    planned = {p.variant.label: p.skip for p in plan_variants(BenchSettings(model="m"), "cpu")}
    assert (planned["onnxruntime int8"] is None) == int8 and (planned["torch bf16"] is None) == bf16
    assert planned["onnxruntime fp32"] is None and planned["torch fp32"] is None
    if not int8:
        assert (
            "no VNNI" in planned["onnxruntime int8"]
            and "--precisions int8 measures it anyway" in planned["onnxruntime int8"]
        )
    explicit = plan_variants(BenchSettings(model="m", formats=("onnxruntime",), precisions=("int8",)), "cpu")
    assert [p.skip for p in explicit] == [None]  # named explicitly: measured anyway
    on_gpu = {p.variant.label: p.skip for p in plan_variants(BenchSettings(model="m"), "cuda")}
    assert "VNNI" not in str(on_gpu.get("onnxruntime int8"))  # a CPU's units say nothing about a GPU


def test_the_machine_record_lists_the_flags_that_matter(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: SAPPHIRE_RAPIDS | {"sse4_2"})
    record = machine.describe_machine("cpu")
    assert set(record.cpu_flags) == SAPPHIRE_RAPIDS & set(cpu.CPU_FLAGS) and "sse4_2" not in record.cpu_flags
    assert record.usable_cores >= 1 and record.gpu is None
