"""The study's numbers from its runs' results: mean ± std over seeds, Δ_MTL against the single-task
baselines, the Pareto front of Δ_MTL against latency. Pure functions of their inputs (no files)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from onepass.models.tasks.base import Task
from onepass.study.results import RunResult
from onepass.train.evaluate import Metrics, delta_mtl


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (ddof 1) of the finite values among `n` seeds."""

    mean: float
    std: float
    n: int

    def to_json(self) -> dict[str, float | int | None]:
        return {"mean": _json_float(self.mean), "std": _json_float(self.std), "n": self.n}


def spread(values: Iterable[float | None]) -> Spread:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return Spread(math.nan, math.nan, 0)
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return Spread(float(np.mean(finite)), std, len(finite))


def metric_spreads(results: Sequence[RunResult], tasks: Sequence[Task]) -> dict[str, dict[str, Spread]]:
    """task -> metric -> Spread over the results (one per seed)."""
    return {
        task.name: {
            metric: spread(r.metrics.get(task.name, {}).get(metric) for r in results)
            for metric in task.metric_directions()
        }
        for task in tasks
    }


def baseline_means(single_task: Mapping[str, Sequence[RunResult]], tasks: Mapping[str, Task]) -> Metrics:
    """B: each task's single-task metrics, averaged over that baseline's seeds."""
    return {
        name: {m: s.mean for m, s in metric_spreads(results, [tasks[name]])[name].items() if s.n}
        for name, results in single_task.items()
    }


def delta_per_seed(results: Sequence[RunResult], baselines: Metrics, tasks: Sequence[Task]) -> dict[int, float]:
    """Δ_MTL of each seed's model against the baselines' mean over seeds (`train.evaluate.delta_mtl`)."""
    return {r.seed: delta_mtl(r.metrics, baselines, tasks) for r in results}


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The names of the (latency, Δ_MTL) points no other point beats: another is at least as fast and
    at least as good, and strictly one of the two. Sorted by latency."""
    front = []
    for name, (latency, delta) in points.items():
        dominated = any(
            other_latency <= latency and other_delta >= delta and (other_latency < latency or other_delta > delta)
            for other, (other_latency, other_delta) in points.items()
            if other != name
        )
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


def best_within(points: Mapping[str, tuple[float, float]], budget_ms: float) -> str | None:
    """The highest Δ_MTL among the points at or under the latency budget."""
    within = {n: p for n, p in points.items() if p[0] <= budget_ms}
    return max(within, key=lambda n: within[n][1]) if within else None


def weights_over_training(results: Sequence[RunResult]) -> dict | None:
    """Balancer weights at each logged epoch's end, mean ± std over seeds; None when nothing was logged.
    The seeds share one budget, so their logs line up epoch by epoch (shorter ones cut the rest)."""
    logs = [r.weights for r in results if r.weights]
    if not logs:
        return None
    length = min(len(log) for log in logs)
    steps = [logs[0][i][0] for i in range(length)]
    tasks = list(logs[0][0][1])
    per_task = {}
    for task in tasks:
        rows = [[log[i][1].get(task, math.nan) for log in logs] for i in range(length)]
        spreads = [spread(row) for row in rows]
        per_task[task] = {"mean": [_json_float(s.mean) for s in spreads], "std": [_json_float(s.std) for s in spreads]}
    values = [v for log in logs for _, weights in log[:length] for v in weights.values()]
    return {"steps": steps, "tasks": per_task, "varies": bool(values) and max(values) - min(values) > 1e-9}


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None
