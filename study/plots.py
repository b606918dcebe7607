"""The study's PNG plots, drawn from report.json with matplotlib (the `bench` extra):

- task weights over training for each balancer whose weights move (as in the GradNorm paper's figures),
- Δ_MTL per configuration with its spread over seeds,
- Δ_MTL against latency, with the Pareto front and the latency budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onepass.study.errors import StudyError
from onepass.study.report import SINGLE_TASK_MODELS

PLOTS_DIR = "plots"
WEIGHTS_PLOT = "weights.png"
DELTA_PLOT = "delta_mtl.png"
PARETO_PLOT = "delta_vs_latency.png"


def require_matplotlib() -> None:
    """Fail before any run starts when the report could not draw its plots."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise StudyError(
            "onepass study draws its plots with matplotlib: pip install 'onepass[bench]' (or pip install matplotlib)"
        ) from None


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_study(document: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """caption -> PNG written under `out`."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    moving = [e for e in document["configurations"] if e["weights"] and e["weights"]["varies"]]
    if moving:
        written["Task weights over training, per balancer (mean over seeds, band ± std)"] = _weights(
            plt, moving, document["tasks"], out / WEIGHTS_PLOT
        )
    measured = [e for e in document["configurations"] if not e["single_task"] and e["delta_mtl"]["n"]]
    if measured:
        written["Δ_MTL per configuration (mean, error bars ± std over seeds)"] = _deltas(
            plt, measured, out / DELTA_PLOT
        )
        with_latency = [e for e in measured if e["latency_ms"] is not None and e["covers_every_task"]]
        if with_latency:
            written["Δ_MTL against batch-1 latency; the Pareto front dashed"] = _pareto(
                plt, document, with_latency, out / PARETO_PLOT
            )
    return written


def _label_points(axis, points: Mapping[str, tuple[float, float]]) -> None:
    """Name every point; configurations timed as one network share a latency, so the labels of each
    such column are stacked top-down at least a line apart, with a thin line to a label that moved."""
    axis.autoscale_view()
    bottom, top = axis.get_ylim()
    left, right = axis.get_xlim()
    gap = 0.035 * (top - bottom)  # about a line of 7-point text on a 5-inch axis
    shift = 0.015 * (right - left)
    columns: dict[float, list[str]] = {}
    for name, (latency, _) in points.items():
        columns.setdefault(latency, []).append(name)
    for latency, names in columns.items():
        names.sort(key=lambda n: -points[n][1])
        y = math.inf
        for name in names:
            delta = points[name][1]
            y = min(delta, y - gap)
            arrow = {"arrowstyle": "-", "color": "grey", "linewidth": 0.5} if y != delta else None
            axis.annotate(
                name, (latency, delta), xytext=(latency + shift, y), textcoords="data", fontsize=7, va="center",
                arrowprops=arrow, bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
            )  # fmt: skip


def _colours(plt, names: list[str]) -> dict[str, Any]:
    palette = plt.get_cmap("tab10").colors
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def _weights(plt, entries: list[dict], tasks: list[str], path: Path) -> Path:
    columns = min(3, len(entries))
    rows = math.ceil(len(entries) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False, sharex=True, layout="constrained"
    )
    colours = _colours(plt, tasks)
    for axis, entry in zip(axes.flat, entries, strict=False):
        weights = entry["weights"]
        steps = weights["steps"]
        for task, series in weights["tasks"].items():
            mean = [math.nan if v is None else v for v in series["mean"]]
            std = [0.0 if v is None else v for v in series["std"]]
            axis.plot(steps, mean, marker="o", markersize=3, color=colours.get(task), label=task)
            axis.fill_between(
                steps, [m - s for m, s in zip(mean, std, strict=True)], [m + s for m, s in zip(mean, std, strict=True)],
                color=colours.get(task), alpha=0.2, linewidth=0,
            )  # fmt: skip
        title = entry["name"] if entry["name"] == entry["balancer"] else f"{entry['name']} ({entry['balancer']})"
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("optimiser step")
        axis.set_ylabel("task weight")
        axis.grid(True, alpha=0.3)
    for axis in list(axes.flat)[len(entries) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _deltas(plt, entries: list[dict], path: Path) -> Path:
    entries = sorted(entries, key=lambda e: e["delta_mtl"]["mean"])
    colours = _colours(plt, sorted({e["architecture"] for e in entries}))
    figure, axis = plt.subplots(figsize=(7.5, 0.45 * len(entries) + 1.5), layout="constrained")
    positions = range(len(entries))
    axis.barh(
        positions,
        [e["delta_mtl"]["mean"] for e in entries],
        xerr=[e["delta_mtl"]["std"] or 0.0 for e in entries],
        color=[colours[e["architecture"]] for e in entries],
        capsize=3,
    )
    axis.set_yticks(list(positions), [e["name"] for e in entries], fontsize=9)
    axis.axvline(0.0, color="black", linewidth=0.8)
    # the zero line (the single-task models) inside the frame, with room to spare (bars stick to 0 otherwise)
    ends = [0.0] + [e["delta_mtl"]["mean"] + sign * (e["delta_mtl"]["std"] or 0.0) for e in entries for sign in (-1, 1)]
    pad = 0.08 * ((max(ends) - min(ends)) or 1.0)
    axis.set_xlim(min(ends) - pad, max(ends) + pad)
    axis.set_xlabel("Δ_MTL (%) against the single-task models; + is better")
    axis.set_title("Δ_MTL per configuration (colour: architecture)")
    axis.grid(True, axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    axis.legend(handles, list(colours), fontsize=8, loc="best")
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _pareto(plt, document: Mapping[str, Any], entries: list[dict], path: Path) -> Path:
    colours = _colours(plt, sorted({e["architecture"] for e in entries}))
    figure, axis = plt.subplots(figsize=(7.5, 5), layout="constrained")
    points = {e["name"]: (e["latency_ms"], e["delta_mtl"]["mean"]) for e in entries}
    for entry in entries:
        latency, delta = points[entry["name"]]
        axis.errorbar(
            latency, delta, yerr=entry["delta_mtl"]["std"] or 0.0, fmt="o", capsize=3,
            color=colours[entry["architecture"]], markeredgecolor="black" if entry["pareto"] else "none",
        )  # fmt: skip
    single = document["single_task_models"]
    if single["latency_ms"] is not None:
        points[SINGLE_TASK_MODELS] = (single["latency_ms"], 0.0)
        axis.plot(single["latency_ms"], 0.0, marker="*", markersize=12, color="black", linestyle="none")
        axis.annotate(
            f"{len(single['tasks'])} {SINGLE_TASK_MODELS}", (single["latency_ms"], 0.0),
            textcoords="offset points", xytext=(5, -10), fontsize=8,
        )  # fmt: skip
    front = [points[e["name"]] for e in entries if e["pareto"]]
    if document["single_task_models_on_front"]:
        front.append(points[SINGLE_TASK_MODELS])
    front.sort()
    if front:
        # a step: between two front points, the faster one's Δ_MTL is the best to be had
        xs, ys = [p[0] for p in front], [p[1] for p in front]
        axis.plot(xs, ys, "k--", linewidth=1, drawstyle="steps-post", label="Pareto front")
    budget = document["latency_budget"]
    if budget.get("budget_ms") is not None:
        axis.axvline(budget["budget_ms"], color="grey", linestyle=":", label=f"latency budget ({budget['factor']:g}x)")
    axis.axhline(0.0, color="black", linewidth=0.6)
    _label_points(axis, {e["name"]: points[e["name"]] for e in entries})
    handles, labels = axis.get_legend_handles_labels()
    handles += [plt.Line2D([], [], marker="o", linestyle="none", color=c) for c in colours.values()]
    labels += list(colours)
    axis.legend(handles, labels, fontsize=8, loc="best")
    axis.set_xlabel("batch-1 latency (ms, median; torch fp32 CPU)")
    axis.set_ylabel("Δ_MTL (%); + is better")
    axis.set_title("Δ_MTL against latency (error bars ± std over seeds)")
    axis.grid(True, alpha=0.3)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
