"""`--plot DIR`: PNG charts drawn from the bench's JSON document with matplotlib (the `bench` extra)."""

from __future__ import annotations

from pathlib import Path

from onepass.bench.plan import BenchError
from onepass.bench.records import ModelBenchDocument, ServeBenchDocument, VariantResult


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


def plot_model(document: ModelBenchDocument, out: str | Path, prefix: str) -> list[Path]:
    """latency vs batch size per format (ms per image, at the first source size), and one-pass vs
    single-task bars."""
    plt = _pyplot()
    from matplotlib import ticker

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    measured = [e for e in document.variants if e.measured is not None]
    source = tuple(document.settings.source_sizes[0])
    if measured:
        figure, axis = plt.subplots(figsize=(7, 4.5), layout="constrained")
        for entry in measured:
            points = [m for m in entry.measured.measurements if tuple(m.source_size) == source]
            label = f"{entry.label} {entry.input_size[0]}x{entry.input_size[1]}"
            axis.plot([m.batch for m in points], [m.ms_per_image for m in points], marker="o", label=label)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        batch_sizes = sorted({m.batch for e in measured for m in e.measured.measurements})
        axis.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
        axis.yaxis.set_major_formatter(ticker.ScalarFormatter())
        axis.yaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel("batch size")
        axis.set_ylabel("model time per image (ms, median)")
        axis.set_title(f"{document.model.name} on {document.device}: latency vs batch size")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        path = out / model_plot_names(prefix)[0]
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    compared = [e for e in measured if e.vs_single_task is not None]
    if compared:
        written.append(_plot_vs_single_task(plt, document, compared, source, out / model_plot_names(prefix)[1]))
    return written


def _plot_vs_single_task(
    plt, document: ModelBenchDocument, compared: list[VariantResult], source: tuple[int, int], path: Path
) -> Path:
    tasks = document.model.tasks
    groups = [(e, b) for e in compared for b in e.vs_single_task.batches if tuple(b.source_size) == source]
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4.5), layout="constrained")
    width = 0.38
    colours = plt.get_cmap("tab10").colors
    for i, (_, b) in enumerate(groups):
        axis.bar(i - width / 2, b.one_pass_ms, width, color="black", label="one pass" if i == 0 else None)
        bottom = 0.0
        for t, task in enumerate(tasks):
            value = b.single_task_ms[task]
            axis.bar(i + width / 2, value, width, bottom=bottom, color=colours[t % 10], label=task if i == 0 else None)
            bottom += value
        axis.text(i, max(bottom, b.one_pass_ms), f"{b.latency_ratio:.2f}x", ha="center", va="bottom", fontsize=9)
    axis.set_xticks(range(len(groups)))
    axis.set_xticklabels([f"{e.label}\nbatch {b.batch}" for e, b in groups], fontsize=8)
    axis.set_ylabel("model time per batch (ms, median)")
    axis.set_title("one pass vs one single-task model per task (stacked); ratio above")
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_serve(document: ServeBenchDocument, out: str | Path, prefix: str) -> list[Path]:
    """Latency p50 / p99 and requests/s against concurrency, per server (and maps setting)."""
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for server in document.servers:
        for maps in document.settings.maps:
            levels = [lv for lv in server.levels if lv.maps == maps and lv.latency_ms.n]
            if levels:
                suffix = "" if len(document.settings.maps) == 1 else f", maps {'on' if maps else 'off'}"
                lines.append((f"{server.name}{suffix}", levels))
    if not lines:
        return []
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    for label, levels in lines:
        concurrency = [lv.concurrency for lv in levels]
        (median,) = latency.plot(concurrency, [lv.latency_ms.p50 for lv in levels], marker="o", label=f"{label} p50")
        colour = median.get_color()  # one colour per server (and maps setting) in both panels
        p99 = [lv.latency_ms.p99 for lv in levels]
        latency.plot(concurrency, p99, marker="x", linestyle=":", color=colour, label=f"{label} p99")
        throughput.plot(concurrency, [lv.requests_per_s for lv in levels], marker="s", color=colour, label=label)
    ticks = sorted({lv.concurrency for _, levels in lines for lv in levels})
    for axis, ylabel in ((latency, "latency (ms)"), (throughput, "requests/s")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [str(c) for c in ticks])
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("HTTP load: " + ", ".join(server.name for server in document.servers))
    path = out / serve_plot_name(prefix)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [path]
