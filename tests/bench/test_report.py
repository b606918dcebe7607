"""BENCHMARKS.md from result documents: every section rendered from the JSON (the committed version 1
results in docs/bench/ included), numbers read from the documents, and a file that is not a bench
result refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

from onepass.bench.document import read_document
from onepass.bench.model_tables import model_tables
from onepass.bench.pipeline_tables import pipeline_tables
from onepass.bench.records import MachineRecord, PipelineBenchDocument, StageCost
from onepass.bench.report import main
from onepass.bench.serve_tables import serve_tables

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "bench"


def test_report_renders_every_committed_result(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    paths = sorted(RESULTS.glob("*.json"))
    assert main(["--out", str(out), "--plots", str(RESULTS), *map(str, paths)]) == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "## CPU" in text and "## HTTP serving" in text
    for path in paths:
        document = read_document(path)
        assert f"`{document.command}`" in text
        tables = {"serve": serve_tables, "pipeline": pipeline_tables}.get(document.kind, model_tables)(document)
        for table in tables:
            assert f"**{table.title}**" in text
            assert all(len(row) == len(table.columns) for row in table.cells())
    cpu = json.loads((RESULTS / "cpu.json").read_text())
    first = next(v for v in cpu["variants"] if v["status"] == "ok")["batches"][0]
    assert f"| {first['images_per_s']:.1f} |" in text  # read from the document, not recomputed
    assert "CPU features: AVX2 yes" in text
    assert "![cpu-latency-vs-batch.png](" in text and "![serve-load.png](" in text  # the charts beside them


def test_a_file_that_is_not_a_result_is_refused(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"format": "onepass-model"}')
    assert main(["--out", str(tmp_path / "B.md"), str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "x.json: not an onepass bench result" in err and err.count("\n") == 1


def test_a_pipeline_result_renders_its_rates_its_ratio_against_the_target_and_its_stages(tmp_path):
    from onepass.bench.document import write_document

    machine = MachineRecord("host", "Linux", "AMD EPYC", 2, 2, ("avx2",), 24 * 2**30, (0.5, 0.6, 0.7))
    stages = (StageCost("read", 5.76, 5.25), StageCost("infer", 9.25, 15.05), StageCost("write", 20.31, 19.31))
    document = PipelineBenchDocument(
        "python benchmarks/video_throughput.py --model default", "2026-12-01T17:19:00+00:00", machine, {"python": "3.11"},
        None, "video", "default", (480, 640), 480, 16, "auto", None, 40.0, 38.0, 18.5, 0.8, stages,
    )  # fmt: skip
    path = write_document(tmp_path / "video.json", document)
    out = tmp_path / "B.md"
    assert main(["--out", str(out), str(path)]) == 0
    text = out.read_text()
    section = text[text.index("## Batch prediction") : text.index("## GPU")]
    assert "| video | 480x640 | 480 | 16 | all | 40.0 | 38.0 | 0.95x | ≥ 0.80x (met) | 18.5 |" in section
    assert "| infer | 9.25 | 15.05 | 26 % |" in section  # 9.25 of the 35.32 ms summed
    assert "CPU features: AVX2 yes" in section
    slower = pipeline_tables(PipelineBenchDocument(**{**document.__dict__, "steady_per_s": 30.0}))[0].cells()[0]
    assert slower[7:9] == ("0.75x", "≥ 0.80x (not met)")
