"""`onepass study` from start to end: validate, render the data, train the runs that are not finished
(here or on Ray), then measure each configuration's cost and write OUT/report.{md,json} and OUT/plots/."""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from onepass.bench import document as bench_document
from onepass.bench.machine import describe_machine, source_revision, versions
from onepass.models.model import MultiTaskModel
from onepass.models.package import open_package, save_package, write_json_atomic
from onepass.models.tasks.base import Task
from onepass.study.config import Configuration, RunSpec, StudyConfig
from onepass.study.data import prepare_data
from onepass.study.errors import StudyError
from onepass.study.latency import measure_costs
from onepass.study.plots import PLOTS_DIR, plot_study, require_matplotlib
from onepass.study.ray_engine import run_ray
from onepass.study.report import build_document, render_report
from onepass.study.results import RunResult, read_result
from onepass.study.runs import Log, RunFunction, RunOutcome, is_finished, log_line, run_local, run_one
from onepass.train.loop import model_config

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
INVOCATIONS_FILE = "invocations.jsonl"  # one line per invocation that wrote a report: a study may take several
INTERIM_DIR = "interim"  # OUT/interim/: the report of the runs finished so far (`write_interim_report`)
LATENCY_DIR = "latency"  # the networks built for timing only (`_timed_packages`)
TIMING_SEED = 0  # their random weights do not change their timing


@dataclass(frozen=True)
class Engine:
    name: str = "local"  # local | ray
    ray_address: str | None = None
    ray_cpus_per_run: float = 1.0

    def describe(self) -> str:
        if self.name == "local":
            return "local (one run after another in one process)"
        return f"ray (one task per run, {self.ray_cpus_per_run:g} CPU each; cluster {self.ray_address or 'local'})"


def run_study(
    study: StudyConfig,
    engine: Engine = Engine(),
    train_runs: bool = True,
    log: Log = log_line,
    run: RunFunction = run_one,
    command: str | None = None,
    started: float | None = None,
    progress: bool = True,
) -> Path:
    """Every run trained (or found finished), then the report; returns OUT/report.md."""
    started = time.perf_counter() if started is None else started
    require_matplotlib()
    specs = study.runs()
    finished = [is_finished(spec) for spec in specs]  # also refuses finished runs of another config, up front
    pending = [spec for spec, done in zip(specs, finished, strict=True) if not done]
    log(
        f"{len(study.all_configurations())} configurations ({len(study.baselines())} single-task baselines) "
        f"x {len(study.seeds)} seeds = {len(specs)} runs: {len(specs) - len(pending)} finished, {len(pending)} to train"
    )
    outcomes: list[RunOutcome] = []
    if train_runs:
        prepare_data(study, log, progress)
        if pending:
            if engine.name == "ray":
                outcomes = run_ray(pending, engine.ray_address, engine.ray_cpus_per_run, run, log)
            else:
                outcomes = run_local(pending, run, log)
    elif pending:
        raise StudyError(
            f"--report-only: {len(pending)} of {len(specs)} runs are not finished (the first: {pending[0].out}); "
            "run the study without --report-only to train them"
        )
    trained = sum(o.status != "skipped" for o in outcomes)
    meta = {
        "command": command,
        "config": study.source,
        "engine": engine.describe(),
        "runs_trained": trained,
        "runs_skipped": len(specs) - trained,
    }
    return write_report(study, specs, meta, started, log)


def write_interim_report(study: StudyConfig, command: str | None = None, log: Log = log_line) -> Path:
    """OUT/interim/report.md (and .json, plots): the report of the runs finished so far, for a study
    that takes longer than a sitting. Configurations with no finished run are left out, and ± is over
    the seeds finished; the report says so. Each single-task baseline needs a finished run (Δ_MTL is
    measured against them)."""
    started = time.perf_counter()
    require_matplotlib()
    specs = study.runs()
    finished = [spec for spec in specs if is_finished(spec)]
    baselines = {c.name for c in study.baselines()}
    missing = sorted(baselines - {spec.configuration for spec in finished})
    if missing:
        raise StudyError(
            f"--interim: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no finished run; Δ_MTL is "
            "measured against every single-task baseline (the study trains them first, seed by seed)"
        )
    done = {spec.configuration for spec in finished}
    meta = {
        "command": command,
        "config": study.source,
        "engine": "none (an interim report trains nothing)",
        "runs_trained": 0,
        "runs_skipped": len(finished),
        "interim": {
            "runs_finished": len(finished),
            "runs": len(specs),
            "left_out": [c.name for c in study.all_configurations() if c.name not in done],
        },
    }
    return write_report(study, finished, meta, started, log, folder=study.out / INTERIM_DIR)


def write_report(
    study: StudyConfig,
    specs: Sequence[RunSpec],
    meta: dict[str, Any],
    started: float,
    log: Log = log_line,
    folder: Path | None = None,
) -> Path:
    """report.{md,json}, plots/ and invocations.jsonl in `folder` (default OUT), from the runs `specs`
    (every configuration with at least one of them)."""
    folder = study.out if folder is None else folder
    results: list[RunResult] = []
    tasks: dict[str, Task] = {}
    for spec in specs:
        result, run_tasks = read_result(spec)
        results.append(result)
        tasks.update({t.name: t for t in run_tasks})
    seed_of = {spec.configuration: spec.seed for spec in reversed(specs)}  # each configuration's first finished seed
    configurations = [
        (c, study.train_config(c, seed_of[c.name])) for c in study.all_configurations() if c.name in seed_of
    ]
    packages, timed_as, base_label = _timed_packages(study, configurations, tasks, folder)
    costs_by_label = measure_costs(packages, study.latency, log)
    costs = {c.name: costs_by_label[timed_as[c.name]] for c, _ in configurations}
    base = {"model": base_label, "latency_ms": costs_by_label[base_label]["latency"].get("p50")}
    document = build_document(
        configurations,
        results,
        tasks,
        costs,
        base,
        study.latency_budget,
        {
            **meta,
            "seeds": list(study.seeds),
            "train_seconds": sum(r.seconds for r in results),
            "versions": bench_document.to_json(versions()),
            "machine": bench_document.to_json(describe_machine("cpu")),
            "source": bench_document.to_json(source_revision()),
            "latency_options": {**vars(study.latency), "timed_as": timed_as},
        },
    )
    plots = plot_study(document, folder / PLOTS_DIR)
    document["plots"] = {caption: str(path.relative_to(folder)) for caption, path in plots.items()}
    document["wall_seconds"] = time.perf_counter() - started
    invocation = {
        "command": meta.get("command"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(document["wall_seconds"], 1),
        "runs_trained": meta.get("runs_trained", 0),
    }
    document["invocations"] = [*_read_invocations(folder / INVOCATIONS_FILE), invocation]
    write_json_atomic(folder / REPORT_JSON, document)
    with (folder / INVOCATIONS_FILE).open("a") as handle:
        handle.write(json.dumps(invocation) + "\n")
    report = folder / REPORT_MD
    report.write_text(render_report(document, tasks, document["plots"]))
    log(f"wrote {report}, {folder / REPORT_JSON} and {len(plots)} plots in {folder / PLOTS_DIR}")
    return report


def _timed_packages(
    study: StudyConfig,
    configurations: list[tuple[Configuration, Any]],
    tasks: dict[str, Task],
    folder: Path,
) -> tuple[dict[str, Path], dict[str, str], str]:
    """The packages to time (one per distinct network: a balancer or learning rate changes the weights,
    not the graph, so configurations with the same model config share one timing), which label each
    configuration is timed as, and the label of the base model (base architecture, every base task).

    Each network is timed as a model built from its config with seeded random weights, saved under
    `folder`/latency/: latency, parameters and FLOPs do not depend on the weights' values, so a run folder
    need not keep its weights (a study carried from machine to machine keeps only each run's record)."""
    # Keyed by the model options the run was trained with, not by its package's config: that also holds
    # what each run calibrated after training (the people's score threshold), which is no other network.
    networks: dict[str, tuple[str, Any]] = {}  # ModelOptions (as JSON) -> (label, the first run's model config)
    timed_as: dict[str, str] = {}
    for configuration, train_config in configurations:
        config = open_package(train_config.run.out).config  # the run's own (its tasks' classes from its data)
        key = _options_key(train_config.model)
        networks.setdefault(key, (configuration.name, config))
        timed_as[configuration.name] = networks[key][0]
    base_options = study.train_config(Configuration("base", {}), study.seeds[0]).model
    base_key = _options_key(base_options)
    if base_key in networks:
        base_label = networks[base_key][0]
    else:
        base_label = f"{study.base_architecture} with every task"
        networks[base_key] = (base_label, model_config(base_options, tuple(tasks[t] for t in study.tasks)))
    packages = {}
    for number, (label, config) in enumerate(networks.values()):
        path = folder / LATENCY_DIR / f"network-{number}"
        torch.manual_seed(TIMING_SEED)
        save_package(path, MultiTaskModel(config).eval(), label, training={"note": "built for timing only"})
        packages[label] = path
    return packages, timed_as, base_label


def _options_key(options: Any) -> str:
    return json.dumps(dataclasses.asdict(options), sort_keys=True, default=str)


def _read_invocations(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
