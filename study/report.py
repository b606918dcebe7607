"""The study's report: one JSON document built from the results, and the Markdown rendered from it
(every number in report.md is read from report.json, nothing recomputed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from onepass.bench.tables import DASH, Table, TextRow, render_markdown
from onepass.models.tasks.base import Task
from onepass.study.config import Configuration
from onepass.study.results import RunResult
from onepass.study.summary import (
    baseline_means,
    best_within,
    delta_per_seed,
    metric_spreads,
    pareto_front,
    spread,
    weights_over_training,
)
from onepass.train.config import TrainConfig

REPORT_FORMAT = "onepass-study-report"
REPORT_VERSION = 1
SINGLE_TASK_MODELS = "single-task models"  # the point "one model per task" in the tables and plots
DELTA_REFERENCE = (
    "per seed, against the single-task baselines' metrics averaged over their seeds; "
    "± is the sample standard deviation over seeds"
)


def build_document(
    configurations: Sequence[tuple[Configuration, TrainConfig]],
    results: Sequence[RunResult],
    tasks: Mapping[str, Task],
    costs: Mapping[str, Mapping[str, Any]] | None = None,
    base: Mapping[str, Any] | None = None,
    latency_budget: float = 1.3,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """report.json. `costs`: configuration -> {parameters, flops_per_image, latency: {p50, ...}};
    `base`: {"model": what it is, "latency_ms": the base architecture's latency}, the budget's unit."""
    costs = dict(costs or {})
    by_configuration: dict[str, list[RunResult]] = {}
    for result in results:
        by_configuration.setdefault(result.configuration, []).append(result)
    singles = {c.single_task: by_configuration.get(c.name, []) for c, _ in configurations if c.single_task}
    baselines = baseline_means(singles, tasks)
    base_tasks = list(singles)

    entries = []
    for configuration, config in configurations:
        runs = sorted(by_configuration.get(configuration.name, []), key=lambda r: r.seed)
        run_tasks = [tasks[name] for name in config.model.tasks]
        per_seed = delta_per_seed(runs, baselines, run_tasks) if runs else {}
        per_task = {t.name: spread(delta_per_seed(runs, baselines, [t]).values()) for t in run_tasks}
        cost = costs.get(configuration.name, {})
        entries.append(
            {
                "name": configuration.name,
                "single_task": configuration.single_task,
                "tasks": list(config.model.tasks),
                "covers_every_task": sorted(config.model.tasks) == sorted(base_tasks),
                "architecture": config.model.architecture,
                "balancer": config.balancer.name,
                "balancer_options": config.balancer.options,
                "lr": config.optimizer.lr,
                "lr_shared": config.optimizer.lr_shared,
                "lr_tasks": config.optimizer.lr_tasks,
                "seeds": [r.seed for r in runs],
                "steps": sorted({r.steps for r in runs}),
                "batch_size": sorted({r.batch_size for r in runs}),
                "train_seconds": spread(r.seconds for r in runs).to_json(),
                "metrics": {
                    t: {m: s.to_json() for m, s in metrics.items()}
                    for t, metrics in metric_spreads(runs, run_tasks).items()
                },
                "delta_mtl": {
                    **spread(per_seed.values()).to_json(),
                    "per_seed": {str(k): v for k, v in per_seed.items()},
                },
                "delta_per_task": {t: s.to_json() for t, s in per_task.items()},
                "parameters": cost.get("parameters"),
                "flops_per_image": cost.get("flops_per_image"),
                "latency_ms": cost.get("latency", {}).get("p50"),
                "latency": cost.get("latency"),
                "weights": weights_over_training(runs),
            }
        )

    singles_entries = [e for e in entries if e["single_task"]]
    single_sum = {
        "tasks": [e["single_task"] for e in singles_entries],
        "parameters": _sum(e["parameters"] for e in singles_entries),
        "flops_per_image": _sum(e["flops_per_image"] for e in singles_entries),
        "latency_ms": _sum(e["latency_ms"] for e in singles_entries),
    }
    for entry in entries:
        entry["latency_ratio"] = _ratio(entry["latency_ms"], single_sum["latency_ms"])
    points = {
        e["name"]: (e["latency_ms"], e["delta_mtl"]["mean"])
        for e in entries
        if not e["single_task"] and e["covers_every_task"] and e["latency_ms"] is not None and e["delta_mtl"]["n"]
    }
    if single_sum["latency_ms"] is not None:
        points[SINGLE_TASK_MODELS] = (single_sum["latency_ms"], 0.0)  # Δ_MTL of the baselines is 0 by definition
    front = pareto_front(points)
    for entry in entries:
        entry["pareto"] = entry["name"] in front
    budget = dict(base or {})
    budget["factor"] = latency_budget
    budget["budget_ms"] = budget["latency_ms"] * latency_budget if budget.get("latency_ms") is not None else None
    candidates = {n: p for n, p in points.items() if n != SINGLE_TASK_MODELS}
    budget["best"] = best_within(candidates, budget["budget_ms"]) if budget["budget_ms"] is not None else None

    threads = sorted({c["threads"] for c in costs.values() if "threads" in c})
    steps = sorted({s for e in entries for s in e["steps"]})
    batch_sizes = sorted({b for e in entries for b in e["batch_size"]})
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        **dict(meta or {}),
        "budget": {
            "steps": steps,
            "batch_size": batch_sizes,
            "same_for_every_run": len(steps) == len(batch_sizes) == 1,
        },
        "tasks": base_tasks,
        "delta_mtl_reference": DELTA_REFERENCE,
        "baselines": baselines,
        "configurations": entries,
        "single_task_models": single_sum,
        "single_task_models_on_front": SINGLE_TASK_MODELS in front,
        "latency_budget": budget,
        "latency_threads": threads,
    }


# ---- Markdown -------------------------------------------------------------------------------
def format_spread(value: Mapping[str, Any] | None, percent: bool = False) -> str:
    if not value or value.get("mean") is None:
        return DASH
    mean, std = value["mean"], value["std"] or 0.0
    # one seed has no spread to show (an interim report's rows may have one): "(1 seed)", not "± 0"
    if value.get("n") == 1:
        spread_text = "% (1 seed)" if percent else "(1 seed)"
    else:
        spread_text = f"± {std:.2f} %" if percent else f"± {_number(std)}"
    if percent:
        mean = 0.0 if round(mean, 2) == 0 else mean  # no "-0.00"
        return f"{mean:+.2f} {spread_text}"
    return f"{_number(mean)} {spread_text}"


def _number(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


def summary_table(document: Mapping[str, Any]) -> Table:
    rows = []
    single_sum = document["single_task_models"]
    threads = document.get("latency_threads") or []
    threads = f", {'/'.join(map(str, threads))} torch thread{'s' if threads != [1] else ''}" if threads else ""
    for entry in document["configurations"]:
        rows.append(
            (
                entry["name"] + (" ★" if entry["pareto"] else ""),
                ", ".join(entry["tasks"]),
                entry["architecture"],
                _balancer_text(entry),
                format_spread(entry["delta_mtl"], percent=True),
                _millions(entry["parameters"]),
                _giga(entry["flops_per_image"]),
                _ms(entry["latency_ms"]),
                _times(entry["latency_ratio"]),
            )
        )
    rows.append(
        (
            f"{SINGLE_TASK_MODELS} (one per task)" + (" ★" if document["single_task_models_on_front"] else ""),
            ", ".join(single_sum["tasks"]),
            DASH,
            DASH,
            "0 (by definition)",
            _millions(single_sum["parameters"]),
            _giga(single_sum["flops_per_image"]),
            _ms(single_sum["latency_ms"]),
            _times(1.0 if single_sum["latency_ms"] else None),
        )
    )
    columns = ("configuration", "tasks", "architecture", "balancer / learning rates", "Δ_MTL", "parameters", "GFLOPs",
               "latency ms", "x single-task sum")  # fmt: skip
    note = (
        "★: on the Pareto front of Δ_MTL against latency (no other choice is both as fast and as good). "
        "A single-task row's Δ_MTL is each seed's model against its own baseline's mean: its spread is the seed noise. "
        "Latency: batch-1 median, torch backend, fp32, CPU, channels-last, every network timed in one process, "
        f"interleaved{threads}, with seeded random weights (its timing does not depend on them); GFLOPs per "
        "image (multiply-adds x 2)."
    )
    return Table("Δ_MTL, size and latency per configuration", columns, tuple(map(TextRow, rows)), note)


def per_task_delta_table(document: Mapping[str, Any]) -> Table:
    tasks = document["tasks"]
    rows = tuple(
        TextRow((e["name"], *(format_spread(e["delta_per_task"].get(t), percent=True) for t in tasks)))
        for e in document["configurations"]
        if not e["single_task"]
    )
    return Table(
        "Δ per task (the mean relative change of the task's metrics; + is better)", ("configuration", *tasks), rows
    )


def metric_tables(document: Mapping[str, Any], tasks: Mapping[str, Task]) -> list[Table]:
    tables = []
    for name in document["tasks"]:
        directions = tasks[name].metric_directions()
        rows = []
        for entry in document["configurations"]:
            if name not in entry["metrics"]:
                continue
            label = f"{entry['name']} (baseline)" if entry["single_task"] == name else entry["name"]
            rows.append(TextRow((label, *(format_spread(entry["metrics"][name].get(m)) for m in directions))))
        columns = ("configuration", *(f"{m} {'↑' if higher else '↓'}" for m, higher in directions.items()))
        tables.append(Table(f"{name}: held-out metrics, mean ± std over seeds", columns, tuple(rows)))
    return tables


def render_report(document: Mapping[str, Any], tasks: Mapping[str, Task], plots: Mapping[str, str]) -> str:
    """report.md; `plots`: caption -> path relative to the report."""
    budget = document["budget"]
    seeds = sorted({s for e in document["configurations"] for s in e["seeds"]})
    multi = [e for e in document["configurations"] if not e["single_task"]]
    lines = [
        f"# onepass study: one model against {len(document['tasks'])}",
        "",
        f"{len(multi)} multi-task configurations and {len(document['tasks'])} single-task baselines "
        f"({', '.join(document['tasks'])}), each trained with seeds {', '.join(map(str, seeds))}.",
        "",
        *_interim_lines(document),
        _budget_line(budget),
        "",
        "Δ_MTL = 1/T Σ_t 1/|M_t| Σ_m (-1)^{l_m} (M_{t,m} − B_{t,m}) / B_{t,m} × 100 % over every metric of every "
        f"task (positive: the multi-task model is better); computed {document['delta_mtl_reference']}.",
        "",
        _budget_choice_line(document),
        "",
        render_markdown(summary_table(document)),
        render_markdown(per_task_delta_table(document)),
    ]
    lines += [render_markdown(table) for table in metric_tables(document, tasks)]
    if plots:
        lines += ["## Plots", ""]
        for caption, path in plots.items():
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    lines += ["## How it was run", "", *_provenance_lines(document), ""]
    return "\n".join(lines)


def _interim_lines(document: Mapping[str, Any]) -> list[str]:
    interim = document.get("interim")
    if not interim:
        return []
    left_out = interim["left_out"]
    return [
        f"**Interim report: {interim['runs_finished']} of {interim['runs']} runs finished.** Each row is over "
        "the seeds finished so far (its seeds are in report.json)"
        + (f"; left out, with no finished run yet: {', '.join(left_out)}" if left_out else "")
        + ". The study's own report replaces this one when every run is finished.",
        "",
    ]


def _budget_line(budget: Mapping[str, Any]) -> str:
    if budget["same_for_every_run"]:
        return (
            f"Fixed training budget: every run, the single-task baselines included, took {budget['steps'][0]} "
            f"optimiser steps of batch {budget['batch_size'][0]} on the same training data."
        )
    return (
        f"**The runs did not all have the same budget** (steps {budget['steps']}, batch sizes "
        f"{budget['batch_size']}): the comparison is not at a fixed budget."
    )


def _budget_choice_line(document: Mapping[str, Any]) -> str:
    budget = document["latency_budget"]
    if budget.get("budget_ms") is None:
        return "No latency budget: latencies were not measured."
    best = budget["best"]
    head = (
        f"Latency budget: {budget['factor']:g}x the base architecture's latency ({budget.get('model')}, "
        f"{_ms(budget['latency_ms'])} ms) = {_ms(budget['budget_ms'])} ms. "
    )
    if best is None:
        return head + "No multi-task configuration with every task fits in it."
    entry = next(e for e in document["configurations"] if e["name"] == best)
    return head + (
        f"**Best within it: `{best}`**, Δ_MTL {format_spread(entry['delta_mtl'], percent=True)} at "
        f"{_ms(entry['latency_ms'])} ms ({_times(entry['latency_ratio'])} the single-task models' summed latency)."
    )


def _provenance_lines(document: Mapping[str, Any]) -> list[str]:
    lines = []
    if document.get("command"):
        lines += ["```bash", document["command"], "```", ""]
    if document.get("wall_seconds") is not None:
        lines.append(
            f"- wall time of this invocation: {_duration(document['wall_seconds'])}"
            f" ({document.get('runs_trained', 0)} runs trained or resumed, {document.get('runs_skipped', 0)} "
            f"already finished); training steps of all runs together: {_duration(document.get('train_seconds', 0))}"
        )
    invocations = document.get("invocations") or []
    if len(invocations) > 1:
        trained = [i for i in invocations if i.get("runs_trained")]
        lines.append(
            f"- {len(invocations)} invocations wrote reports into this study folder, {len(trained)} of them training "
            f"runs: {_duration(sum(i['wall_seconds'] for i in trained))} of wall time together (each in report.json)"
        )
    if document.get("engine"):
        lines.append(f"- engine: {document['engine']}")
    machine = document.get("machine") or {}
    if machine:
        lines.append(
            f"- machine: {machine.get('cpu')}, {machine.get('usable_cores')} usable cores, "
            f"load average {machine.get('load_average')} when the report was written"
        )
    versions = document.get("versions") or {}
    if versions:
        lines.append(
            "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "onnxruntime_providers")
        )
    source = document.get("source")
    if source:
        lines.append(
            f"- source: commit {source['commit']}" + (" with local changes" if source["local_changes"] else "")
        )
    return lines


def _balancer_text(entry: Mapping[str, Any]) -> str:
    text = entry["balancer"]
    if entry["balancer_options"]:
        text += " (" + ", ".join(f"{k} {v}" for k, v in entry["balancer_options"].items()) + ")"
    if entry["lr_tasks"]:
        text += "; lr " + ", ".join(f"{k} {v:g}" for k, v in entry["lr_tasks"].items())
    if entry["lr_shared"] is not None:
        text += f"; shared lr {entry['lr_shared']:g}"
    return text


def _sum(values) -> float | None:
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _millions(value: float | None) -> str:
    return DASH if value is None else f"{value / 1e6:.2f} M"


def _giga(value: float | None) -> str:
    return DASH if value is None else f"{value / 1e9:.3g}"


def _ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _times(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min {seconds:02d} s" if hours else f"{minutes} min {seconds:02d} s"
