"""`onepass bench MODEL` end to end on a tiny model: the document's structure, the tables, the plots,
and every derived figure (images/s, FLOP/s, one-pass / single-task ratios, a head's cost) recomputed
from the measured values it was derived from. Every run names its device (the CPU), so a GPU
machine runs the same checks."""

from __future__ import annotations

import pytest

from onepass.bench.document import read_document
from onepass.bench.model_tables import model_tables
from onepass.bench.records import FileInfo, Measured, Measurement, ModelCounts, SetRun
from onepass.bench.run import compare_single_task, head_cost
from onepass.bench.timing import LatencyStats
from onepass.cli import main
from tests.bench.conftest import FAST, needs_matplotlib, plot_args

pytestmark = pytest.mark.slow
SOURCES = [(96, 128), (48, 64)]


@pytest.fixture(scope="module")
def torch_run(tiny_package, tmp_path_factory):
    """torch fp32 (no export needed) at two camera frame sizes, against the four single-task models and
    without the normals head, with plots."""
    out = tmp_path_factory.mktemp("torch-run")
    argv = ["bench", str(tiny_package), "--device", "cpu", "--backends", "torch", "--precisions", "fp32", *FAST]
    argv += ["--source-size", ",".join(f"{h}x{w}" for h, w in SOURCES), "--metric-images", "0"]
    argv += ["--vs-single-task", "--head-cost", "normals", "--json", str(out / "r.json"), *plot_args(out / "plots")]
    assert main(argv) == 0
    return read_document(out / "r.json"), out


@pytest.fixture(scope="module")
def onnx_run(tiny_package, tmp_path_factory):
    """onnxruntime fp32 (exported into the work directory), with the metric cost. (int8 and fp16 take
    the same path through the bench; the export stage's tests cover their files.)"""
    out = tmp_path_factory.mktemp("onnx-run")
    argv = ["bench", str(tiny_package), "--device", "cpu", "--backends", "onnxruntime", "--precisions", "fp32", *FAST]
    argv += ["--metric-images", "8", "--workdir", str(out / "work"), "--json", str(out / "r.json")]
    assert main(argv) == 0
    return read_document(out / "r.json")


def ok_variant(document):
    (entry,) = [v for v in document.variants if v.status == "ok"]
    return entry


def test_document_describes_the_run(torch_run):
    document, _ = torch_run
    assert document.kind == "model" and document.device == "cpu" and document.machine.gpu is None
    assert document.command.startswith("onepass bench ") and "--head-cost normals" in document.command
    assert document.model.tasks == ("semseg", "depth", "normals", "attributes")
    assert document.versions["torch"] and document.machine.usable_cores >= 1
    assert document.roofline["fp32"].flops_per_s > 0
    assert document.settings.source_sizes == tuple(SOURCES) and document.settings.head_cost == ("normals",)
    (size,) = document.sizes
    assert size.input_size == (64, 96) and size.counts.flops_per_image > 0
    assert sum(m.flops_per_image for m in size.counts.modules) == size.counts.flops_per_image
    assert [s.tasks for s in size.single_task] == [(t,) for t in document.model.tasks]
    (without,) = size.without
    assert without.tasks == ("normals",) and without.counts.flops_per_image < size.counts.flops_per_image


def test_each_batch_and_source_size_is_measured_and_derived_from_its_samples(torch_run):
    document, _ = torch_run
    entry = ok_variant(document)
    assert entry.label == "torch fp32" and entry.file.names == ("weights.safetensors",)
    measured = entry.measured
    assert [(m.batch, m.source_size) for m in measured.measurements] == [(b, s) for b in (1, 2) for s in SOURCES]
    flops = document.sizes[0].counts.flops_per_image
    peak = document.roofline["fp32"].flops_per_s
    for m in measured.measurements:
        model = m.model_ms
        assert model.n >= 2 and 0 < model.min <= model.p50 <= model.p90 <= model.p99
        assert m.images_per_s == pytest.approx(m.batch / (model.mean / 1e3))
        assert m.ms_per_image == pytest.approx(model.p50 / m.batch)
        pre, post = m.preprocess_ms_per_image.p50, m.postprocess_ms_per_image.p50
        assert pre > 0 and post > 0 and m.end_to_end_ms_per_image == pytest.approx(pre + m.ms_per_image + post)
        assert m.flops_per_s == pytest.approx(flops * m.images_per_s)
        assert m.roofline.fraction == pytest.approx(m.flops_per_s / peak)
        assert m.peak_rss_bytes > measured.rss_baseline_bytes > 0
    assert all(check.passed for check in measured.quality.parity)  # torch against itself


def test_single_task_ratios_come_from_the_measured_values(torch_run):
    document, _ = torch_run
    entry = ok_variant(document)
    single, vs = entry.single_task, entry.vs_single_task
    assert single.tasks == document.model.tasks and len(single.measured.backend_choice) == 4
    for m, r in zip(entry.measured.measurements, vs.batches, strict=True):
        s = single.measured.measurement(m.batch, m.source_size)
        assert (r.batch, r.source_size) == (m.batch, m.source_size) and len(s.per_model_ms) == 4
        assert s.model_ms.p50 == pytest.approx(sum(t.p50 for t in s.per_model_ms))
        assert r.latency_ratio == pytest.approx(m.model_ms.p50 / s.model_ms.p50)
        assert r.end_to_end_ratio == pytest.approx(m.end_to_end_ms_per_image / s.end_to_end_ms_per_image)
        one_memory = m.peak_rss_bytes - entry.measured.rss_baseline_bytes
        all_memory = s.peak_rss_bytes - single.measured.rss_baseline_bytes
        assert r.memory_ratio == pytest.approx(one_memory / all_memory)
        assert tuple(r.single_task_ms) == document.model.tasks
    size = document.sizes[0]
    assert vs.parameters_ratio == pytest.approx(
        size.counts.parameters / sum(s.counts.parameters for s in size.single_task)
    )
    assert vs.flops_ratio == pytest.approx(
        size.counts.flops_per_image / sum(s.counts.flops_per_image for s in size.single_task)
    )
    assert 0 < vs.flops_ratio < 1  # one shared encoder instead of four
    assert vs.goal is None  # the 0.30x goal is stated for onnxruntime on CPU


def test_a_heads_cost_comes_from_the_model_without_it(torch_run):
    document, _ = torch_run
    entry = ok_variant(document)
    (cost,) = entry.head_costs
    assert cost.run.status == "ok" and cost.run.tasks == ("normals",)
    size = document.sizes[0]
    assert (cost.flops_with, cost.flops_without) == (
        size.counts.flops_per_image,
        size.without[0].counts.flops_per_image,
    )
    for m, b in zip(entry.measured.measurements, cost.batches, strict=True):
        w = cost.run.measured.measurement(m.batch, m.source_size)
        assert (b.with_ms, b.without_ms) == (m.model_ms.p50, w.model_ms.p50)
        assert b.without_end_to_end_ms_per_image == w.end_to_end_ms_per_image


def test_unavailable_variants_are_rows_with_a_reason(tiny_package, tmp_path):
    argv = ["bench", str(tiny_package), "--device", "cpu", "--backends", "torch,tensorrt", "--precisions", "fp16"]
    argv += [*FAST, "--metric-images", "0", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    rows = {v.label: v for v in read_document(tmp_path / "r.json").variants}
    assert rows["torch fp16"].status == "skipped" and "CUDA" in rows["torch fp16"].reason
    assert rows["tensorrt fp16"].status == "skipped" and "CUDA" in rows["tensorrt fp16"].reason


def test_terminal_tables(torch_run):
    document, _ = torch_run
    tables = {t.title: t for t in model_tables(document)}
    assert list(tables) == [
        "model time per backend, precision, input size, source size and batch",
        "FLOPs per module",
        "the cost of a head: with and without it",
        "one pass against one single-task model per task",
    ]
    results = tables["model time per backend, precision, input size, source size and batch"]
    assert [row[2:4] for row in results.cells()] == [(f"{h}x{w}", str(b)) for b in (1, 2) for h, w in SOURCES]
    assert all(len(row) == len(t.columns) for t in tables.values() for row in t.cells())
    modules = [row[1] for row in tables["FLOPs per module"].cells()]
    assert modules[0] == "encoder" and "heads.dense_heads.normals" in modules


@needs_matplotlib
def test_plots(torch_run):
    _, out = torch_run
    assert {p.name for p in (out / "plots").iterdir()} == {
        "r-latency-vs-batch.png",
        "r-one-pass-vs-single-task.png",
    }


def test_onnxruntime_exports_parity_and_metric_cost(onnx_run):
    document = onnx_run
    rows = {v.label: v for v in document.variants}
    assert set(rows) == {"onnxruntime fp32"}
    entry = rows["onnxruntime fp32"]
    assert entry.status == "ok", entry.reason
    assert entry.file.names == ("model.onnx",) and entry.file.export_s > 0  # exported by the bench, in its workdir
    assert all(c.passed for c in entry.measured.quality.parity)
    reference = document.sizes[0].reference_metrics
    metrics = entry.measured.quality.metrics
    assert set(metrics) == set(reference) and set(metrics["semseg"]) == set(reference["semseg"])
    assert entry.measured.providers == (("CPUExecutionProvider",),)
    (cost,) = [t for t in model_tables(document) if t.title == "the metric cost of each precision"]
    assert cost.columns == ("task", "metric", "pytorch fp32", "onnxruntime fp32")
    assert ("semseg", "miou ↑") == cost.cells()[0][:2]


def stats(p50: float) -> LatencyStats:
    return LatencyStats(5, p50, p50, p50, p50, p50)


def measured(measurements: list[Measurement], baseline: int = 100) -> Measured:
    return Measured(1, ("torch",), (None,), 2, (0.1,), 0.2, baseline, baseline, None, 0, True, tuple(measurements))


def measurement(p50: float, e2e: float, peak: int, parts: int = 1) -> Measurement:
    per = tuple(stats(p50 / parts) for _ in range(parts))
    return Measurement(1, (48, 64), stats(p50), per, stats(0), stats(0), peak, end_to_end_ms_per_image=e2e)


def test_compare_single_task_arithmetic():
    one = measured([measurement(3.0, 4.0, 150)])
    single = SetRun(
        ("a", "b"), "ok", file=FileInfo(("x", "y"), 64), measured=measured([measurement(10.0, 16.0, 300, 2)])
    )
    counts = [ModelCounts(8, 20, 0), ModelCounts(8, 20, 0)]
    result = compare_single_task(one, ModelCounts(10, 30, 0), FileInfo(("m",), 40), single, counts)
    (b,) = result.batches
    assert b.latency_ratio == pytest.approx(0.3) and b.end_to_end_ratio == pytest.approx(0.25)
    assert b.memory_ratio == pytest.approx(50 / 200) and b.single_task_ms == {"a": 5.0, "b": 5.0}
    assert result.parameters_ratio == pytest.approx(10 / 16) and result.flops_ratio == pytest.approx(30 / 40)
    assert result.file_bytes_ratio == pytest.approx(40 / 64)


def test_head_cost_arithmetic():
    with_head = measured([measurement(12.0, 15.0, 150)])
    without = SetRun(("people",), "ok", measured=measured([measurement(9.0, 11.0, 140)]))
    cost = head_cost(with_head, without, ModelCounts(10, 300, 0), ModelCounts(8, 270, 0))
    (b,) = cost.batches
    assert (b.with_ms, b.without_ms) == (12.0, 9.0)
    assert (b.with_end_to_end_ms_per_image, b.without_end_to_end_ms_per_image) == (15.0, 11.0)
    assert (cost.flops_with, cost.flops_without, cost.parameters_with, cost.parameters_without) == (300, 270, 10, 8)
    failed = head_cost(
        with_head, SetRun(("people",), "error", reason="boom"), ModelCounts(10, 300, 0), ModelCounts(8, 270, 0)
    )
    assert failed.batches == () and failed.run.reason == "boom"
