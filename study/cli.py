"""`onepass study`: does one model beat four, and which architecture and balancer gets it there.

    onepass study --config configs/study.yaml [--out DIR] [--engine local|ray] [--ray-address ADDR]
                  [--ray-cpus-per-run N] [--plan] [--report-only]
    onepass study --quick [--out DIR]          # configs/study-quick.yaml: under 30 min on 2 idle cores

Imports nothing heavy at module level: the `onepass` parser imports this module to build itself.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from onepass.study.errors import StudyError

# The quick preset is a file of the source tree (configs/ is not part of the wheel).
QUICK_PRESET = Path(__file__).resolve().parent.parent / "configs" / "study-quick.yaml"


HELP = "the multi-task study: single-task baselines, architectures x balancers x seeds, Δ_MTL report"
DESCRIPTION = (
    "Train every configuration of a study (each run a normal onepass train into OUT/runs/<configuration>/"
    "seed<k>/, skipped when finished, resumed when it crashed), then write OUT/report.md, OUT/report.json "
    "and OUT/plots/: per-task metrics and Δ_MTL as mean ± std over seeds, parameters, FLOPs and batch-1 "
    "latency against the single-task models, the Pareto front."
)


def add_parser(commands) -> None:
    parser = commands.add_parser("study", help=HELP, description=DESCRIPTION)
    parser.add_argument("--config", help="the study's YAML file (format: onepass-study, version: 1)")
    parser.add_argument("--quick", action="store_true", help=f"the quick preset ({QUICK_PRESET.name})")
    parser.add_argument("--out", help="the study folder (default: the config's out)")
    parser.add_argument("--engine", default="local", choices=("local", "ray"), help="local (default) or ray")
    parser.add_argument("--ray-address", dest="ray_address", help="join this Ray cluster (default: start a local Ray)")
    parser.add_argument(
        "--ray-cpus-per-run", dest="ray_cpus_per_run", type=float, default=1.0, help="CPUs per run's task (default 1)"
    )
    parser.add_argument("--plan", action="store_true", help="validate the config, list the runs and stop")
    parser.add_argument(
        "--report-only", dest="report_only", action="store_true", help="train nothing: report on the finished runs"
    )
    parser.add_argument(
        "--interim",
        action="store_true",
        help="train nothing: report on the runs finished so far, into OUT/interim/ (a long study's progress)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar while rendering")
    parser.set_defaults(run=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if bool(args.config) == bool(args.quick):
        raise StudyError("give --config FILE or --quick (one of them)")
    if args.engine != "ray" and (args.ray_address or args.ray_cpus_per_run != 1.0):
        raise StudyError("--ray-address and --ray-cpus-per-run are options of --engine ray")
    if args.ray_cpus_per_run <= 0:
        raise StudyError(f"--ray-cpus-per-run {args.ray_cpus_per_run:g}: must be positive")
    if sum((args.plan, args.report_only, args.interim)) > 1:
        raise StudyError("--plan, --report-only and --interim: give one of them")
    path = args.config
    if args.quick:
        if not QUICK_PRESET.is_file():
            raise StudyError(
                f"--quick reads {QUICK_PRESET}, which this installation lacks (configs/ ships with the source "
                "tree only); run from a checkout, or give --config FILE"
            )
        path = str(QUICK_PRESET)

    from onepass.study.config import load_study

    study = load_study(path, args.out)
    if args.plan:
        print_plan(study)
        return 0

    if args.interim:
        from onepass.study.pipeline import write_interim_report

        print(f"report: {write_interim_report(study, command_line(args, path))}")
        return 0

    from onepass.study.pipeline import Engine, run_study

    engine = Engine(args.engine, args.ray_address, args.ray_cpus_per_run)
    report = run_study(
        study,
        engine,
        train_runs=not args.report_only,
        command=command_line(args, path),
        started=started,
        progress=args.progress,
    )
    print(f"report: {report}")
    return 0


def print_plan(study) -> None:
    runs = study.runs()
    print(
        f"{study.source}: {len(study.all_configurations())} configurations x {len(study.seeds)} seeds = {len(runs)} runs"
    )
    for configuration in study.all_configurations():
        config = study.train_config(configuration, study.seeds[0])
        options = f" {config.balancer.options}" if config.balancer.options else ""
        rates = f", lr_tasks {config.optimizer.lr_tasks}" if config.optimizer.lr_tasks else ""
        print(
            f"  {configuration.name}: tasks {','.join(config.model.tasks)}, {config.model.architecture}, "
            f"balancer {config.balancer.name}{options}{rates}"
        )
    first = runs[0].config
    budget = f"{first.run.steps} steps" if first.run.steps else f"{first.run.epochs} epochs"
    print(
        f"every run: {budget} of batch {first.optimizer.batch_size}; runs in {study.out}/runs/<configuration>/seed<k>/"
    )


def command_line(args: argparse.Namespace, path: str) -> str:
    """The command as given, for the report."""
    words = ["onepass", "study", "--quick" if args.quick else "--config", *([] if args.quick else [path])]
    for name in ("out", "engine", "ray_address"):
        value = getattr(args, name)
        if value is not None and not (name == "engine" and value == "local"):
            words += ["--" + name.replace("_", "-"), str(value)]
    if args.engine == "ray":
        words += ["--ray-cpus-per-run", f"{args.ray_cpus_per_run:g}"]
    for flag in ("report_only", "interim"):
        if getattr(args, flag):
            words.append("--" + flag.replace("_", "-"))
    return shlex.join(words)
