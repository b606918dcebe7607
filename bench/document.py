"""The bench's JSON files: one `to_json` / `from_json` pair for every record in bench/records.py, and
the result documents' format ("onepass-bench", versioned) with a loader that validates them.

Version 2 (this onepass) keys each measurement by batch and source size and nests what a worker
measured under `measured`; version 1 documents (one source size, measured fields flat in each
variant) are read by upgrading them first, so older results still render.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any

from onepass.bench.plan import BenchError
from onepass.bench.records import Document, ModelBenchDocument, PipelineBenchDocument, ServeBenchDocument

FORMAT = "onepass-bench"
VERSION = 2
READS = (1, 2)
KINDS: dict[str, type] = {
    "model": ModelBenchDocument,
    "serve": ServeBenchDocument,
    "pipeline": PipelineBenchDocument,
}
DEFAULT_SOURCE_SIZE = [480, 640]  # what version 1 timed from, when its settings do not say


class DocumentError(BenchError):
    """A bench JSON file is not one this onepass can read; the message names the file and the key."""


# ---- the generic pair -----------------------------------------------------------------------
def to_json(value: Any) -> Any:
    """A record (or anything made of records, tuples, dicts and plain values) -> JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(kind: Any, data: Any, where: str = "document") -> Any:
    """JSON data -> a `kind` (a record class, or a type such as tuple[int, int]), every value checked
    against the field's type; `where` names the place in the file an error points to."""
    if dataclasses.is_dataclass(kind):
        return _record(kind, data, where)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return from_json(option, data, where)
            except DocumentError:
                continue
        return from_json(options[-1], data, where)
    if origin is tuple:
        if not isinstance(data, list):
            raise DocumentError(f"{where}: expected a list, got {_name(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise DocumentError(f"{where}: expected {len(args)} values, got {len(data)}")
        return tuple(from_json(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if origin is dict:
        if not isinstance(data, dict):
            raise DocumentError(f"{where}: expected an object, got {_name(data)}")
        value_kind = args[1]
        return {str(k): from_json(value_kind, v, f"{where}.{k}") for k, v in data.items()}
    if kind is Any:
        return data
    if kind is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if kind is int and isinstance(data, int) and not isinstance(data, bool):
        return data
    if kind in (str, bool) and isinstance(data, kind):
        return data
    if kind is type(None) and data is None:
        return None
    raise DocumentError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {_name(data)}")


def _record(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise DocumentError(f"{where}: expected an object, got {_name(data)}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise DocumentError(f"{where}: unknown key(s) {unknown} (a {kind.__name__} has {sorted(fields)})")
    hints = _hints(kind)
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = from_json(hints[name], data[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise DocumentError(f"{where}: missing key {name!r}")
    return kind(**values)


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _name(data: Any) -> str:
    return "null" if data is None else type(data).__name__


# ---- the documents --------------------------------------------------------------------------
def document_json(document: Document) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "kind": document.kind, **to_json(document)}


def write_document(path: str | Path, document: Document) -> Path:
    from onepass.models.package import write_json_atomic

    path = Path(path)
    write_json_atomic(path, document_json(document))
    return path


def parse_document(data: Any, where: str = "document") -> Document:
    """A result document's JSON (this version or an older one) -> its record, validated."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DocumentError(f"{where}: not an onepass bench result (no 'format': {FORMAT!r})")
    version = data.get("version")
    if version not in READS:
        raise DocumentError(
            f"{where}: bench result version {version!r}; this onepass reads versions {', '.join(map(str, READS))} "
            "(upgrade onepass, or re-run the bench)"
        )
    if version == 1:
        data = upgrade_v1(data)
    kind = KINDS.get(data.get("kind"))
    if kind is None:
        raise DocumentError(f"{where}: 'kind' must be one of {sorted(KINDS)}, got {data.get('kind')!r}")
    body = {k: v for k, v in data.items() if k not in ("format", "version", "kind")}
    return from_json(kind, body, where)


def read_document(path: str | Path) -> Document:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DocumentError(f"{path}: not a readable JSON file ({error})") from None
    return parse_document(data, str(path))


# ---- version 1 -> 2 -------------------------------------------------------------------------
def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 document as version 2 would have written it (the same figures, new places)."""
    data = dict(data, version=2)
    return _upgrade_serve_v1(data) if data.get("kind") == "serve" else _upgrade_model_v1(data)


MEASURED_V1 = (
    "pid", "backend_choice", "providers", "torch_threads", "load_s", "first_run_s", "rss_baseline_bytes",
    "rss_after_load_bytes", "peak_rss_load_bytes", "peak_rss_bytes", "peak_rss_resettable", "quality",
)  # fmt: skip
COUNTS_V1 = ("parameters", "flops_per_image", "weights_bytes")


def _stats_v1(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "sum_of"}  # the set's size: len(per_model_ms) now


def _batch_v1(batch: dict[str, Any], source_size: list[int]) -> dict[str, Any]:
    batch = dict(batch, source_size=source_size)
    for key in ("model_ms", "preprocess_ms_per_image", "postprocess_ms_per_image"):
        batch[key] = _stats_v1(batch[key])
    batch["per_model_ms"] = [_stats_v1(s) for s in batch["per_model_ms"]]
    return batch


def _measured_v1(entry: dict[str, Any], source_size: list[int]) -> dict[str, Any]:
    measured = {k: entry[k] for k in MEASURED_V1 if k in entry}
    measured["measurements"] = [_batch_v1(b, source_size) for b in entry["batches"]]
    return measured


def _variant_v1(entry: dict[str, Any], source_size: list[int]) -> dict[str, Any]:
    variant = {k: entry[k] for k in ("format", "precision", "label", "input_size", "status", "reason") if k in entry}
    if entry["status"] != "ok":
        return variant
    file = entry["file"]
    variant["file"] = {"names": [file["name"]], "bytes": file["bytes"], "export_s": file.get("export_s")}
    variant["measured"] = _measured_v1(entry, source_size)
    single = entry.get("single_task")
    if single is not None:
        tasks = single.get("tasks") or [c.get("task") for c in single.get("counts", [])]
        run: dict[str, Any] = {"tasks": tasks, "status": single["status"], "reason": single.get("reason")}
        if single["status"] == "ok":
            run["file"] = {"names": single["file"]["names"], "bytes": single["file"]["bytes"]}
            run["measured"] = _measured_v1(single, source_size)
        variant["single_task"] = run
    if "vs_single_task" in entry:
        vs = dict(entry["vs_single_task"])
        vs["batches"] = [dict(b, source_size=source_size) for b in vs["batches"]]
        variant["vs_single_task"] = vs
    return variant


def _upgrade_model_v1(data: dict[str, Any]) -> dict[str, Any]:
    settings = dict(data["settings"])
    source_size = list(settings.pop("source_size", DEFAULT_SOURCE_SIZE))
    settings["source_sizes"] = [source_size]
    settings.pop("extra", None)
    sizes = []
    for size in data["sizes"]:
        size = dict(size)
        size["single_task"] = [
            {"tasks": [s["task"]], "path": s["path"], "counts": {k: s[k] for k in COUNTS_V1}}
            for s in size.get("single_task", [])
        ]
        sizes.append(size)
    variants = [_variant_v1(v, source_size) for v in data["variants"]]
    return dict(data, settings=settings, sizes=sizes, variants=variants)


def _upgrade_serve_v1(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    url, levels = data.pop("url"), data.pop("levels")
    data["servers"] = [
        {"name": "onepass serve", "url": url, "started": False, "levels": [dict(level, maps=True) for level in levels]}
    ]
    settings = dict(data["settings"])
    reference = data.get("in_process")
    if reference:
        settings["in_process_batches"] = [b["batch"] for b in reference["batches"]]
        data["in_process"] = dict(reference, batches=[dict(b, phases={}) for b in reference["batches"]])
    data["settings"] = settings
    return data
