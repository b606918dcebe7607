"""The bench's JSON: records round-trip through the one to_json / from_json pair, the loader names
the place of a wrong value, and the version 1 results in docs/bench/ still read (upgraded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onepass.bench.document import (
    VERSION,
    DocumentError,
    document_json,
    from_json,
    parse_document,
    read_document,
    to_json,
)
from onepass.bench.records import ModelBenchDocument, ServeBenchDocument, WorkerSpec

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "bench"


def _results(version_1: bool) -> list[Path]:
    return [p for p in sorted(RESULTS.glob("*.json")) if (json.loads(p.read_text())["version"] == 1) == version_1]


@pytest.mark.parametrize("path", _results(version_1=False), ids=lambda p: p.name)
def test_current_results_read_and_round_trip(path):
    document = read_document(path)
    assert json.loads(path.read_text())["version"] == VERSION
    assert parse_document(json.loads(json.dumps(document_json(document)))) == document


@pytest.mark.parametrize("path", _results(version_1=True), ids=lambda p: p.name)
def test_version_1_results_read_and_round_trip(path):
    raw = json.loads(path.read_text())
    document = read_document(path)
    assert raw["version"] == 1 and isinstance(document, ModelBenchDocument | ServeBenchDocument)
    again = parse_document(json.loads(json.dumps(document_json(document))))
    assert again == document and document_json(again)["version"] == VERSION
    if isinstance(document, ModelBenchDocument):  # the same figures, in their new places
        first = next(v for v in raw["variants"] if v["status"] == "ok")
        entry = next(v for v in document.variants if v.status == "ok")
        (m, *_) = entry.measured.measurements
        assert m.model_ms.p50 == first["batches"][0]["model_ms"]["p50"] and m.batch == first["batches"][0]["batch"]
        assert tuple(m.source_size) == tuple(raw["settings"]["source_size"])
        assert entry.file.names == (first["file"]["name"],)
    else:
        (server,) = document.servers
        assert server.url == raw["url"] and [lv.requests for lv in server.levels] == [
            lv["requests"] for lv in raw["levels"]
        ]


def test_from_json_checks_every_value_and_names_its_place():
    spec = WorkerSpec(("a",), "torch", False, "fp32", "cpu", (1, 8), ((48, 64),), "s.npz", 1, 2, 0.5, None)
    data = to_json(spec)
    assert data["source_sizes"] == [[48, 64]] and from_json(WorkerSpec, data) == spec
    with pytest.raises(DocumentError, match=r"spec\.batch_sizes\[1\]: expected int, got str"):
        from_json(WorkerSpec, {**data, "batch_sizes": [1, "8"]}, "spec")
    with pytest.raises(DocumentError, match=r"spec\.source_sizes\[0\]: expected 2 values, got 3"):
        from_json(WorkerSpec, {**data, "source_sizes": [[1, 2, 3]]}, "spec")
    with pytest.raises(DocumentError, match=r"unknown key\(s\) \['extra'\]"):
        from_json(WorkerSpec, {**data, "extra": 1})
    with pytest.raises(DocumentError, match="missing key 'backend'"):
        from_json(WorkerSpec, {k: v for k, v in data.items() if k != "backend"})
    assert from_json(WorkerSpec, {**data, "seconds": 1}).seconds == 1.0  # an int where a float goes
    with pytest.raises(DocumentError, match="expected bool"):
        from_json(WorkerSpec, {**data, "compile": 0})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"format": "something-else"}, "not an onepass bench result"),
        ({"format": "onepass-bench", "version": 9, "kind": "model"}, "version 9; this onepass reads versions 1, 2"),
        ({"format": "onepass-bench", "version": 2, "kind": "plot"}, "'kind' must be one of"),
    ],
)
def test_documents_are_validated(data, message):
    with pytest.raises(DocumentError, match=message):
        parse_document(data, "r.json")


def test_unreadable_file(tmp_path):
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(DocumentError, match="r.json: not a readable JSON file"):
        read_document(tmp_path / "r.json")
