"""What an export prints and records in the package's exports.json (models/package_exports.py): the
parity of each fp32 export per head, and the task metrics each reduced precision costs next to
PyTorch fp32 on the same held-out images. Every format's `export` reports through these."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from onepass.export.parity import GraphRunner, torch_runner
from onepass.export.quality import Examples, folder_examples, graph_metrics, held_out_scenes
from onepass.models.package import ModelPackage
from onepass.models.tasks.base import OutputAgreement


def measuring_examples(package: ModelPackage, eval_data: str | None, report: dict) -> Examples:
    """The images a reduced precision is measured on (a labelled folder dataset, or held-out synthetic
    scenes), read and validated before any slow work; recorded as the report's reference."""
    examples = folder_examples(package, eval_data) if eval_data else held_out_scenes(package)
    report["reference"] = {"images": eval_data or "held-out synthetic scenes", "count": len(examples[0])}
    return examples


def record_metrics(package: ModelPackage, runners: Mapping[str, GraphRunner], report: dict, examples: Examples) -> None:
    """Task metrics of each export on held-out images, next to PyTorch fp32: the cost of a precision."""
    reference = graph_metrics(package, torch_runner(package), examples)
    results = {name: graph_metrics(package, run, examples) for name, run in runners.items()}
    images = report["reference"]["images"]
    table = Table(title=f"task metrics on {len(examples[0])} images of {images} (Δ against PyTorch fp32)")
    for column in ("task", "metric", "pytorch fp32", *results):
        table.add_column(column, justify="right")
    for task in package.config.tasks:
        for metric, higher_is_better in task.metric_directions().items():
            base = reference[task.name][metric]
            cells = []
            for values in results.values():
                delta = values[task.name][metric] - base
                worse = delta < 0 if higher_is_better else delta > 0
                shown = f"[red]{delta:+.3g}[/red]" if worse and abs(delta) > 1e-9 else f"{delta:+.3g}"
                cells.append(f"{values[task.name][metric]:.4g} ({shown})")
            table.add_row(task.name, metric + (" ↑" if higher_is_better else " ↓"), f"{base:.4g}", *cells)
    Console(width=160).print(table)
    report["reference"]["pytorch fp32"] = reference
    for name, values in results.items():
        report["files"].setdefault(name, {})["metrics"] = values


def print_parity(name: str, checks: list[OutputAgreement]) -> None:
    table = Table(title=f"parity of {name} against PyTorch (8 fixed synthetic scenes)")
    for column in ("output", "measure", "value", "limit", "status"):
        table.add_column(column)
    for check in checks:
        limit = f"{'≥' if check.higher_is_better else '≤'} {check.limit:g}"
        table.add_row(check.output, check.measure, f"{check.value:.4g}", limit, "ok" if check.passed else "FAILED")
    Console(width=120).print(table)


def parity_json(checks: list[OutputAgreement]) -> list[dict]:
    """A file's "parity" entry in exports.json."""
    return [{"output": c.output, "measure": c.measure, "value": c.value, "limit": c.limit, "passed": c.passed}
            for c in checks]  # fmt: skip
