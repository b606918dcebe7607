"""The study's runs: each one a normal `onepass train` into OUT/runs/<configuration>/seed<k>/.

A run is finished when its metrics.json exists (train writes it last). A run that crashed is
resumed from its checkpoint (`onepass train --resume`, bit for bit on CPU), or restarted from
scratch when it died before its first checkpoint. A finished run whose training config differs from
what the study now asks for is refused, not silently reused.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from onepass.errors import ConfigError
from onepass.models.package import METRICS_FILE, open_package
from onepass.study.config import RunSpec
from onepass.study.errors import StudyError
from onepass.train.config import TrainConfig
from onepass.train.loop import RUN_DIR, train

CHECKPOINT_FILE = "checkpoint.pt"  # inside RUN_DIR, as train/loop.py's Trainer.checkpoint_path names it
IGNORED_WHEN_COMPARING = ("out", "num_workers", "device")  # how a run ran, not what it is


@dataclass(frozen=True)
class RunOutcome:
    configuration: str
    seed: int
    status: str  # "trained" | "resumed" | "skipped"
    seconds: float


RunFunction = Callable[[RunSpec], RunOutcome]
Log = Callable[[str], None]


def log_line(message: str) -> None:
    """The study's progress: one line per event, flushed (a study runs for hours, often into a log file)."""
    print(message, flush=True)


def is_finished(spec: RunSpec) -> bool:
    """metrics.json exists; and then the run must be the one the study asks for. A training option
    added to onepass since the run was trained reads as its default (which, by this project's rule,
    keeps what came before), so a study that spans sessions survives a new option."""
    if not (spec.out / METRICS_FILE).is_file():
        return False
    saved = open_package(spec.out).training.get("config", {})
    try:
        saved = TrainConfig.from_mapping(saved).to_json()
    except ConfigError:
        pass  # an option this onepass no longer has: the others are compared as saved
    current = spec.config.to_json()
    changed = [k for k in current if k not in IGNORED_WHEN_COMPARING and saved.get(k) != current[k]]
    if changed:
        differences = ", ".join(f"{k} {saved.get(k)!r} (the study now says {current[k]!r})" for k in changed)
        raise StudyError(
            f"{spec.out}: finished with {differences}; delete that run folder to train it again, "
            "or give the study another --out"
        )
    return True


def run_one(spec: RunSpec) -> RunOutcome:
    """Train one run to its package; the local engine and every Ray task call this."""
    if is_finished(spec):
        return RunOutcome(spec.configuration, spec.seed, "skipped", 0.0)
    started = time.perf_counter()
    resume = (spec.out / RUN_DIR / CHECKPOINT_FILE).is_file()
    if not resume and spec.out.exists():
        shutil.rmtree(spec.out)  # died before its first checkpoint: nothing in it is worth keeping
    train(spec.config, resume=resume, progress=False)
    return RunOutcome(spec.configuration, spec.seed, "resumed" if resume else "trained", time.perf_counter() - started)


def outcome_line(done: int, total: int, spec: RunSpec, outcome: RunOutcome) -> str:
    how = {"trained": "trained", "resumed": "resumed from its checkpoint and finished", "skipped": "already finished"}
    return f"[{done}/{total}] {spec.label}: {how[outcome.status]} in {outcome.seconds:.0f} s ({spec.out})"


def run_local(specs: Sequence[RunSpec], run: RunFunction = run_one, log: Log = log_line) -> list[RunOutcome]:
    """One run after another in this process; the first failure stops the study (what is finished stays)."""
    outcomes = []
    for done, spec in enumerate(specs, 1):
        log(f"[{done - 1}/{len(specs)}] {spec.label}: training into {spec.out}")
        outcome = run(spec)
        log(outcome_line(done, len(specs), spec, outcome))
        outcomes.append(outcome)
    return outcomes
