"""`--plot DIR`: PNG charts drawn from the bench's JSON document with matplotlib (the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onepass.bench.plan import BenchError


def require_matplotlib() -> None:
    """Fail before any measuring starts when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("--plot needs matplotlib: pip install 'onepass[bench]' (or pip install matplotlib)") from None


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def model_plot_names(prefix: str) -> tuple[str, str]:
    """The files `plot_model` writes (the report links them by these names)."""
    return f"{prefix}-latency-vs-batch.png", f"{prefix}-one-pass-vs-single-task.png"


def serve_plot_name(prefix: str) -> str:
    return f"{prefix}-load.png"


def plot_model(document: dict[str, Any], out: str | Path, prefix: str) -> list[Path]:
    """latency vs batch size per format (ms per image), and one-pass vs single-task bars."""
    plt = _pyplot()
    from matplotlib import ticker

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    measured = [e for e in document["variants"] if e["status"] == "ok"]
    if measured:
        figure, axis = plt.subplots(figsize=(7, 4.5), layout="constrained")
        for entry in measured:
            batches = [b["batch"] for b in entry["batches"]]
            label = f"{entry['label']} {entry['input_size'][0]}x{entry['input_size'][1]}"
            axis.plot(batches, [b["ms_per_image"] for b in entry["batches"]], marker="o", label=label)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        batch_sizes = sorted({b["batch"] for e in measured for b in e["batches"]})
        axis.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
        axis.yaxis.set_major_formatter(ticker.ScalarFormatter())
        axis.yaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel("batch size")
        axis.set_ylabel("model time per image (ms, median)")
        axis.set_title(f"{document['model']['name']} on {document['device']}: latency vs batch size")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        path = out / model_plot_names(prefix)[0]
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    compared = [e for e in measured if "vs_single_task" in e]
    if compared:
        written.append(_plot_vs_single_task(plt, document, compared, out / model_plot_names(prefix)[1]))
    return written


def _plot_vs_single_task(plt, document: dict[str, Any], compared: list[dict], path: Path) -> Path:
    tasks = document["model"]["tasks"]
    groups = [(e, b) for e in compared for b in e["vs_single_task"]["batches"]]
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4.5), layout="constrained")
    width = 0.38
    colours = plt.get_cmap("tab10").colors
    for i, (_, b) in enumerate(groups):
        axis.bar(i - width / 2, b["one_pass_ms"], width, color="black", label="one pass" if i == 0 else None)
        bottom = 0.0
        for t, task in enumerate(tasks):
            value = b["single_task_ms"][task]
            axis.bar(i + width / 2, value, width, bottom=bottom, color=colours[t % 10], label=task if i == 0 else None)
            bottom += value
        axis.text(i, max(bottom, b["one_pass_ms"]), f"{b['latency_ratio']:.2f}x", ha="center", va="bottom", fontsize=9)
    axis.set_xticks(range(len(groups)))
    axis.set_xticklabels([f"{e['label']}\nbatch {b['batch']}" for e, b in groups], fontsize=8)
    axis.set_ylabel("model time per batch (ms, median)")
    axis.set_title("one pass vs one single-task model per task (stacked); ratio above")
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_serve(document: dict[str, Any], out: str | Path, prefix: str) -> list[Path]:
    """Latency percentiles and requests/s against concurrency."""
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    levels = [level for level in document["levels"] if level["latency_ms"].get("n")]
    if not levels:
        return []
    concurrency = [level["concurrency"] for level in levels]
    figure, axis = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for key in ("p50", "p90", "p99"):
        axis.plot(concurrency, [level["latency_ms"][key] for level in levels], marker="o", label=f"latency {key}")
    axis.set_xscale("log", base=2)
    axis.set_xticks(concurrency, [str(c) for c in concurrency])
    axis.set_xlabel("concurrent clients")
    axis.set_ylabel("latency (ms)")
    axis.grid(True, alpha=0.3)
    throughput = axis.twinx()
    throughput.plot(concurrency, [level["requests_per_s"] for level in levels], "k--", marker="s", label="requests/s")
    throughput.set_ylabel("requests/s")
    lines = axis.get_legend_handles_labels()
    more = throughput.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    axis.set_title(f"HTTP load against {document['url']}")
    path = out / serve_plot_name(prefix)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [path]
