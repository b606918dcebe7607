"""A metrics document as a table: one row per (task, metric), the model's value, then each baseline.

`onepass train`, `onepass eval` and `onepass info` print metrics documents (models/package.py writes
them) with this; the rows come from each task's metrics and which direction is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from onepass.models.tasks.base import Task

Metrics = Mapping[str, Mapping[str, float]]  # task -> metric -> value


def format_metrics_table(results: Metrics, tasks: Sequence[Task], columns: Mapping[str, Metrics] | None = None) -> str:
    """A rich table: one row per (task, metric), the model's value and optional comparison columns
    (a metrics document's "baselines": {"trivial": ..., "single-task": ...})."""
    from rich.console import Console
    from rich.table import Table

    columns = dict(columns or {})
    table = Table(title="evaluation")
    for header in ("task", "metric", "better", "model", *columns):
        table.add_column(header, justify="right" if header not in ("task", "metric") else "left")
    for task in tasks:
        for metric, higher in task.metric_directions().items():
            row = [task.name, metric, "↑" if higher else "↓", _format(results.get(task.name, {}).get(metric))]
            row += [_format(other.get(task.name, {}).get(metric)) for other in columns.values()]
            table.add_row(*row)
    console = Console(width=120, record=True)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def _format(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if abs(value) < 10 else f"{value:.2f}"
