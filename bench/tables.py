"""The bench's tables, built once from the JSON document and rendered two ways: in the terminal (rich)
and as Markdown (BENCHMARKS.md). Every number shown is read from the document, nothing recomputed
from anything else."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DASH = "—"


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def mb(value: float | None) -> str:
    return DASH if value is None else f"{value / 1e6:.1f} MB"


def ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def times(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def size_text(size: Iterable[int]) -> str:
    return "x".join(str(v) for v in size)


def parity_text(entry: dict[str, Any]) -> str:
    checks = entry.get("quality", {}).get("parity")
    if not checks:
        return DASH
    passed = sum(c["passed"] for c in checks)
    return "ok" if passed == len(checks) else f"{passed}/{len(checks)} in fp32 limits"


def metric_deltas(entry: dict[str, Any], reference: dict | None, directions: dict[str, dict[str, bool]]) -> list:
    """(task, metric, value, delta, worse) for every metric the variant has, against the reference."""
    metrics = entry.get("quality", {}).get("metrics")
    if not metrics or not reference:
        return []
    found = []
    for task, values in metrics.items():
        for metric, value in values.items():
            base = reference.get(task, {}).get(metric)
            if base is None:
                continue
            delta = value - base
            higher = directions.get(task, {}).get(metric, True)
            found.append((task, metric, value, delta, delta < 0 if higher else delta > 0))
    return found


def metric_cost_text(entry: dict[str, Any], reference: dict | None, directions: dict) -> str:
    """The largest relative worsening of any task metric against PyTorch fp32 ("none" if none worse)."""
    deltas = metric_deltas(entry, reference, directions)
    if not deltas:
        return DASH
    worst, worst_relative = None, 0.0
    for task, metric, value, delta, worse in deltas:
        base = value - delta
        relative = abs(delta) / abs(base) if base else abs(delta)
        if worse and relative > worst_relative:
            worst, worst_relative = (task, metric), relative
    if worst is None or worst_relative < 1e-4:
        return "none"
    return f"{worst[1]} -{worst_relative * 100:.2g} %"


def _directions(document: dict[str, Any]) -> dict[str, dict[str, bool]]:
    return document.get("metric_directions", {})


def _reference(document: dict[str, Any], size: list[int]) -> dict | None:
    for entry in document.get("sizes", []):
        if entry["input_size"] == size:
            return entry.get("reference_metrics")
    return None


def results_table(document: dict[str, Any]) -> Table:
    cuda = str(document.get("device", "cpu")).startswith("cuda")
    columns = ["format", "input", "batch", "status", "size", "parity", "metric cost", "p50 ms", "p90 ms", "p99 ms"]
    columns += ["ms/img", "img/s", "pre + post ms/img", "peak RSS (+model)", "GFLOP/s (of peak)"]
    if cuda:
        columns.append("GPU mem")
    rows = []
    for entry in document["variants"]:
        head = [entry["label"], size_text(entry["input_size"])]
        if entry["status"] != "ok":
            reason = entry.get("reason", "")
            rows.append((*head, DASH, f"{entry['status']}: {reason}", *[""] * (len(columns) - 4)))
            continue
        reference = _reference(document, entry["input_size"])
        for b in entry["batches"]:
            gflops = DASH
            if "flops_per_s" in b:
                gflops = f"{b['flops_per_s'] / 1e9:.1f}"
                if "roofline" in b:
                    gflops += f" ({b['roofline']['fraction'] * 100:.0f}% {b['roofline']['peak']})"
            pre_post = f"{ms(b['preprocess_ms_per_image']['p50'])} + {ms(b['postprocess_ms_per_image']['p50'])}"
            row = [
                *head,
                str(b["batch"]),
                "ok",
                mb(entry["file"]["bytes"]),
                parity_text(entry),
                metric_cost_text(entry, reference, _directions(document)),
                ms(b["model_ms"]["p50"]),
                ms(b["model_ms"]["p90"]),
                ms(b["model_ms"]["p99"]),
                ms(b["ms_per_image"]),
                f"{b['images_per_s']:.1f}",
                pre_post,
                f"{mb(b['peak_rss_bytes'])} (+{(b['peak_rss_bytes'] - entry['rss_baseline_bytes']) / 1e6:.0f})",
                gflops,
            ]
            if cuda:
                gpu = b.get("gpu_memory") or {}
                used = gpu.get("process_bytes") or gpu.get("torch_peak_bytes")
                row.append(mb(used))
            rows.append(tuple(row))
    note = (
        "Latency is model time (`backend.run`) per batch; pre = resize + stack, post = each task's to_result at "
        f"the {size_text(document['settings']['source_size'])} source frame. img/s = batch / mean model time. "
        "parity: agreement with PyTorch fp32 on 8 fixed scenes, by the export's fp32 limits. "
        "metric cost: largest relative loss of any task metric against PyTorch fp32 on held-out scenes. "
        "peak RSS: the worker process's peak while that batch size ran (+model: above its RSS before loading)."
    )
    return Table("model time per backend, precision, input size and batch", tuple(columns), tuple(rows), note)


def vs_single_task_table(document: dict[str, Any]) -> Table | None:
    columns = (
        "format", "input", "batch", "one-pass ms", "single-task ms (sum)", "per task ms",
        "latency", "end-to-end", "memory", "parameters", "FLOPs", "file size", "goal",
    )  # fmt: skip
    rows = []
    for entry in document["variants"]:
        single = entry.get("single_task")
        if single is None:
            continue
        head = (entry["label"], size_text(entry["input_size"]))
        if "vs_single_task" not in entry:
            rows.append((*head, DASH, f"{single['status']}: {single.get('reason', '')}", *[""] * (len(columns) - 4)))
            continue
        vs = entry["vs_single_task"]
        goal = vs.get("goal")
        goal_text = DASH if goal is None else f"≤ {goal['goal']:.2f}x: {'met' if goal['met'] else 'NOT met'}"
        for b in vs["batches"]:
            rows.append(
                (
                    *head,
                    str(b["batch"]),
                    ms(b["one_pass_ms"]),
                    ms(b["single_task_sum_ms"]),
                    " + ".join(f"{ms(v)}" for v in b["single_task_ms"].values()),
                    times(b["latency_ratio"]),
                    times(b["end_to_end_ratio"]),
                    times(b["memory_ratio"]),
                    times(vs["parameters_ratio"]),
                    times(vs["flops_ratio"]),
                    times(vs["file_bytes_ratio"]),
                    goal_text,
                )
            )
    if not rows:
        return None
    tasks = document["model"]["tasks"]
    note = (
        f"Ratios are one-pass / the {len(tasks)} single-task models ({', '.join(tasks)}: same encoder, architecture "
        "and input size), measured in the same run. latency: median model time of a batch against the sum of the "
        "N models' medians on it (per task ms in that order; all N loaded, each timed alone in turn); end-to-end "
        "adds each predictor's pre- and post-processing; memory: peak RSS above the process's baseline, one "
        "model against all N loaded."
    )
    return Table("one pass against one single-task model per task", columns, tuple(rows), note)


def precision_cost_table(document: dict[str, Any]) -> Table | None:
    measured = [e for e in document["variants"] if e.get("quality", {}).get("metrics")]
    if not measured:
        return None
    size = measured[0]["input_size"]
    reference = _reference(document, size)
    if not reference:
        return None
    measured = [e for e in measured if e["input_size"] == size]
    directions = _directions(document)
    columns = ("task", "metric", "pytorch fp32", *[e["label"] for e in measured])
    rows = []
    for task, metrics in reference.items():
        for metric, base in metrics.items():
            higher = directions.get(task, {}).get(metric, True)
            cells = []
            for entry in measured:
                value = entry["quality"]["metrics"].get(task, {}).get(metric)
                cells.append(DASH if value is None else f"{value:.4g} ({value - base:+.2g})")
            rows.append((task, f"{metric} {'↑' if higher else '↓'}", f"{base:.4g}", *cells))
    scenes = document["settings"]["metric_images"]
    note = f"Task metrics on {scenes} held-out synthetic scenes at {size_text(size)}; (Δ) against PyTorch fp32."
    return Table("the metric cost of each precision", columns, tuple(rows), note)


def summary_lines(document: dict[str, Any]) -> list[str]:
    machine, model = document["machine"], document["model"]
    lines = [
        f"model {model['name']} ({model['encoder']}, {model['architecture']}, tasks {', '.join(model['tasks'])}) "
        f"on {document['device']}: {machine['cpu']}, {machine['usable_cores']} usable cores"
        + (f", GPU {machine['gpu']['name']}" if "gpu" in machine else ""),
    ]
    for size in document.get("sizes", []):
        counts = size["counts"]
        lines.append(
            f"input {size_text(size['input_size'])}: {counts['parameters'] / 1e6:.2f} M parameters, "
            f"{counts['flops_per_image'] / 1e9:.3f} GFLOP per image (torch FlopCounterMode)"
        )
        if size.get("metrics_error"):
            lines.append(f"metric cost not measured at {size_text(size['input_size'])}: {size['metrics_error']}")
    for dtype, peak in document.get("roofline", {}).items():
        threads = f", {peak['threads']} threads" if peak.get("threads") else ""
        lines.append(
            f"roofline: {dtype} matmul {peak['n']}x{peak['n']}: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s{threads}"
        )
    return lines


def render_rich(table: Table, console) -> None:
    from rich.table import Table as RichTable

    rich_table = RichTable(title=table.title, title_justify="left")
    for column in table.columns:
        rich_table.add_column(column, overflow="fold")
    for row in table.rows:
        rich_table.add_row(*row)
    console.print(rich_table)
    if table.note:
        console.print(table.note, style="dim")


def render_markdown(table: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"**{table.title}**", "", "| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def model_tables(document: dict[str, Any]) -> list[Table]:
    tables = [results_table(document), vs_single_task_table(document), precision_cost_table(document)]
    return [t for t in tables if t is not None]


def serve_table(document: dict[str, Any]) -> Table:
    columns = ("concurrency", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "server batch size")
    rows = []
    for level in document["levels"]:
        latency = level["latency_ms"]
        errors = ", ".join(f"{k}: {v}" for k, v in level["errors"].items()) or "0"
        batches = level.get("batch_sizes")
        if batches is None:
            batch_text = "not in /metrics"
        elif not batches["batches"]:
            batch_text = "no batches"
        else:
            batch_text = f"mean {batches['mean']:.2f}, max ≤ {batches['max_at_most']} ({batches['batches']} batches)"
        rows.append(
            (
                str(level["concurrency"]),
                str(level["requests"]),
                errors,
                DASH if level["requests_per_s"] is None else f"{level['requests_per_s']:.1f}",
                ms(latency.get("p50")),
                ms(latency.get("p90")),
                ms(latency.get("p99")),
                batch_text,
            )
        )
    settings = document["settings"]
    per_level = f"{settings['duration']} s" if settings.get("duration") else f"{settings['requests']} requests"
    note = (
        f"POST {document['url']}/predict with a {document['payload_bytes'] / 1e3:.0f} kB image, closed loop: "
        f"each of C clients sends its next request when the last returns; {per_level} per level after "
        f"{settings['warmup']} warm-up requests. Latency of successful requests; batch sizes from the server's "
        "adaptive batching histogram in /metrics."
    )
    reference = document.get("in_process")
    if reference:
        figures = "; ".join(
            f"batch {b['batch']}: p50 {ms(b['latency_ms']['p50'])} ms, {b['images_per_s']:.1f} img/s"
            for b in reference["batches"]
        )
        note += f" In-process, same image, decode + predict ({reference['backend_choice']}): {figures}."
    return Table(f"HTTP load against {document['url']}", columns, tuple(rows), note)
