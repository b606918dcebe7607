"""`onepass bench MODEL` end to end on a tiny model: the JSON's structure, the tables, the plots, and
every derived figure (images/s, FLOP/s, one-pass / single-task ratios) recomputed from the measured
values it was derived from. Every run names its device (the CPU), so a GPU machine runs the same
checks."""

from __future__ import annotations

import json

import pytest

from onepass.bench.run import compare_single_task
from onepass.bench.tables import model_tables
from onepass.cli import main
from tests.bench.conftest import FAST, needs_matplotlib, plot_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_run(tiny_package, tmp_path_factory):
    """torch fp32 (no export needed) against the four single-task models, with plots."""
    out = tmp_path_factory.mktemp("torch-run")
    argv = ["bench", str(tiny_package), "--device", "cpu", "--backends", "torch", "--precisions", "fp32", *FAST]
    argv += ["--metric-images", "0", "--vs-single-task", "--json", str(out / "r.json"), *plot_args(out / "plots")]
    assert main(argv) == 0
    return json.loads((out / "r.json").read_text()), out


@pytest.fixture(scope="module")
def onnx_run(tiny_package, tmp_path_factory):
    """onnxruntime fp32 (exported into the work directory), with the metric cost. (int8 and fp16 take
    the same path through the bench; the export stage's tests cover their files.)"""
    out = tmp_path_factory.mktemp("onnx-run")
    argv = ["bench", str(tiny_package), "--device", "cpu", "--backends", "onnxruntime", "--precisions", "fp32", *FAST]
    argv += ["--metric-images", "8", "--workdir", str(out / "work"), "--json", str(out / "r.json")]
    assert main(argv) == 0
    return json.loads((out / "r.json").read_text())


def test_document_describes_the_run(torch_run):
    document, _ = torch_run
    assert (document["format"], document["version"], document["kind"]) == ("onepass-bench", 1, "model")
    assert document["device"] == "cpu" and document["machine"].get("gpu") is None
    assert document["command"].startswith("onepass bench ") and "--vs-single-task" in document["command"]
    assert document["model"]["tasks"] == ["semseg", "depth", "normals", "attributes"]
    assert document["versions"]["torch"] and document["machine"]["usable_cores"] >= 1
    assert document["roofline"]["fp32"]["flops_per_s"] > 0
    (size,) = document["sizes"]
    assert size["input_size"] == [64, 96] and size["counts"]["flops_per_image"] > 0
    assert [s["task"] for s in size["single_task"]] == document["model"]["tasks"]


def test_each_batch_size_is_measured_and_derived_from_its_samples(torch_run):
    document, _ = torch_run
    (entry,) = [v for v in document["variants"] if v["status"] == "ok"]
    assert entry["label"] == "torch fp32" and entry["file"]["name"] == "weights.safetensors"
    assert [b["batch"] for b in entry["batches"]] == [1, 2]
    flops = document["sizes"][0]["counts"]["flops_per_image"]
    peak = document["roofline"]["fp32"]["flops_per_s"]
    for b in entry["batches"]:
        model = b["model_ms"]
        assert model["n"] >= 2 and 0 < model["min"] <= model["p50"] <= model["p90"] <= model["p99"]
        assert b["images_per_s"] == pytest.approx(b["batch"] / (model["mean"] / 1e3))
        assert b["ms_per_image"] == pytest.approx(model["p50"] / b["batch"])
        assert b["flops_per_s"] == pytest.approx(flops * b["images_per_s"])
        assert b["roofline"]["fraction"] == pytest.approx(b["flops_per_s"] / peak)
        assert b["preprocess_ms_per_image"]["p50"] > 0 and b["postprocess_ms_per_image"]["p50"] > 0
        assert b["peak_rss_bytes"] > entry["rss_baseline_bytes"] > 0
    assert all(check["passed"] for check in entry["quality"]["parity"])  # torch against itself


def test_single_task_ratios_come_from_the_measured_values(torch_run):
    document, _ = torch_run
    (entry,) = [v for v in document["variants"] if v["status"] == "ok"]
    single, vs = entry["single_task"], entry["vs_single_task"]
    assert single["tasks"] == document["model"]["tasks"] and len(single["backend_choice"]) == 4
    for b, s, r in zip(entry["batches"], single["batches"], vs["batches"], strict=True):
        assert len(s["per_model_ms"]) == 4
        assert r["latency_ratio"] == pytest.approx(b["model_ms"]["p50"] / s["model_ms"]["p50"])
        assert r["end_to_end_ratio"] == pytest.approx(b["end_to_end_ms_per_image"] / s["end_to_end_ms_per_image"])
        one_memory = b["peak_rss_bytes"] - entry["rss_baseline_bytes"]
        all_memory = s["peak_rss_bytes"] - single["rss_baseline_bytes"]
        assert r["memory_ratio"] == pytest.approx(one_memory / all_memory)
        assert list(r["single_task_ms"]) == document["model"]["tasks"]
    counts = document["sizes"][0]
    assert vs["parameters_ratio"] == pytest.approx(
        counts["counts"]["parameters"] / sum(s["parameters"] for s in counts["single_task"])
    )
    assert vs["flops_ratio"] == pytest.approx(
        counts["counts"]["flops_per_image"] / sum(s["flops_per_image"] for s in counts["single_task"])
    )
    assert 0 < vs["flops_ratio"] < 1  # one shared encoder instead of four
    assert vs["goal"] is None  # the 0.30x goal is stated for onnxruntime on CPU


def test_unavailable_variants_are_rows_with_a_reason(tiny_package, tmp_path):
    argv = [
        "bench",
        str(tiny_package),
        "--device",
        "cpu",
        "--backends",
        "torch,tensorrt",
        "--precisions",
        "fp16",
        *FAST,
    ]
    argv += ["--metric-images", "0", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    rows = {v["label"]: v for v in json.loads((tmp_path / "r.json").read_text())["variants"]}
    assert rows["torch fp16"]["status"] == "skipped" and "CUDA" in rows["torch fp16"]["reason"]
    assert rows["tensorrt fp16"]["status"] == "skipped" and "CUDA" in rows["tensorrt fp16"]["reason"]


def test_terminal_tables(torch_run):
    document, _ = torch_run
    titles = [t.title for t in model_tables(document)]
    assert titles[:2] == [
        "model time per backend, precision, input size and batch",
        "one pass against one single-task model per task",
    ]


@needs_matplotlib
def test_plots(torch_run):
    _, out = torch_run
    assert {p.name for p in (out / "plots").iterdir()} == {
        "r-latency-vs-batch.png",
        "r-one-pass-vs-single-task.png",
    }


def test_onnxruntime_exports_parity_and_metric_cost(onnx_run):
    document = onnx_run
    rows = {v["label"]: v for v in document["variants"]}
    assert set(rows) == {"onnxruntime fp32"}
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("reason") for r in rows.values()]
    assert rows["onnxruntime fp32"]["file"]["name"] == "model.onnx"
    assert rows["onnxruntime fp32"]["file"]["export_s"] > 0  # exported by the bench, into its work directory
    assert all(c["passed"] for c in rows["onnxruntime fp32"]["quality"]["parity"])
    reference = document["sizes"][0]["reference_metrics"]
    for row in rows.values():
        metrics = row["quality"]["metrics"]
        assert set(metrics) == set(reference) and set(metrics["semseg"]) == set(reference["semseg"])
        assert row["providers"] == [["CPUExecutionProvider"]]
    (cost,) = [t for t in model_tables(document) if t.title == "the metric cost of each precision"]
    assert cost.columns == ("task", "metric", "pytorch fp32", "onnxruntime fp32")
    assert ("semseg", "miou ↑") == cost.rows[0][:2]


def test_compare_single_task_arithmetic():
    def measured(p50: float, e2e: float, peak: int, baseline: int, counts: dict, file_bytes: int) -> dict:
        batch = {"batch": 1, "model_ms": {"p50": p50}, "per_model_ms": [{"p50": p50 / 2}] * 2}
        batch |= {"end_to_end_ms_per_image": e2e, "peak_rss_bytes": peak}
        return {"batches": [batch], "rss_baseline_bytes": baseline, "counts": counts, "file": {"bytes": file_bytes}}

    one = measured(3.0, 4.0, 150, 100, {"parameters": 10, "flops_per_image": 30}, 40)
    single = measured(10.0, 16.0, 300, 100, [{"parameters": 8, "flops_per_image": 20}] * 2, 64)
    single["tasks"] = ["a", "b"]
    result = compare_single_task(one, single)
    (b,) = result["batches"]
    assert b["latency_ratio"] == pytest.approx(0.3) and b["end_to_end_ratio"] == pytest.approx(0.25)
    assert b["memory_ratio"] == pytest.approx(50 / 200) and b["single_task_ms"] == {"a": 5.0, "b": 5.0}
    assert result["parameters_ratio"] == pytest.approx(10 / 16) and result["flops_ratio"] == pytest.approx(30 / 40)
    assert result["file_bytes_ratio"] == pytest.approx(40 / 64)
