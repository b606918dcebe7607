"""What a finished run left behind, read back: held-out metrics, budget, and the balancer's task
weights over training (OUT/train/log.jsonl)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from onepass.models.package import open_package
from onepass.models.tasks.base import Task
from onepass.study.config import RunSpec
from onepass.study.errors import StudyError
from onepass.train.evaluate import Metrics
from onepass.train.loop import RUN_DIR

LOG_FILE = "log.jsonl"  # inside RUN_DIR, one line per epoch (train/loop.py's Trainer.log_epoch)


@dataclass(frozen=True)
class RunResult:
    configuration: str
    seed: int
    metrics: Metrics  # task -> metric -> value, on the held-out data (the run's metrics.json)
    steps: int
    batch_size: int
    seconds: float  # training steps' wall time, as train recorded it
    weights: tuple[tuple[int, dict[str, float]], ...] = ()  # (step, weight per task) at each epoch's end


def read_result(spec: RunSpec) -> tuple[RunResult, tuple[Task, ...]]:
    """The run's result and its tasks (which carry the metrics' directions)."""
    package = open_package(spec.out)
    metrics = package.metrics
    if metrics is None:
        raise StudyError(f"{spec.out}: not finished (no metrics.json); run the study to train it")
    training = package.training
    result = RunResult(
        configuration=spec.configuration,
        seed=spec.seed,
        metrics=metrics["metrics"],
        steps=int(training.get("steps", 0)),
        batch_size=int(training.get("config", {}).get("batch_size", 0)),
        seconds=float(training.get("seconds", 0.0)),
        weights=read_weights(spec.out / RUN_DIR / LOG_FILE),
    )
    return result, package.config.tasks


def read_weights(path: Path) -> tuple[tuple[int, dict[str, float]], ...]:
    """(step, weights) per epoch; a resumed run may have logged an epoch twice, and the last line wins."""
    if not path.is_file():
        return ()
    by_epoch: dict[int, tuple[int, dict[str, float]]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_epoch[int(record["epoch"])] = (int(record["step"]), dict(record.get("weights", {})))
    return tuple(by_epoch[e] for e in sorted(by_epoch))
