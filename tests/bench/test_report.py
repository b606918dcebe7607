"""BENCHMARKS.md from result documents: every section rendered from the JSON (the committed version 1
results in docs/bench/ included), numbers read from the documents, and a file that is not a bench
result refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

from onepass.bench.document import read_document
from onepass.bench.model_tables import model_tables
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
        tables = serve_tables(document) if document.kind == "serve" else model_tables(document)
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
