"""`onepass study --engine ray`: one Ray task per run, each calling the local engine's `run_one`.

The study folder (and a data folder outside it) must be on a filesystem every node sees: each task
writes its own run folder; the driver renders the data before and writes the report after. A worker
that dies is retried by Ray (its task's default `max_retries`), and the retry resumes the run from
its checkpoint like any crashed run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from onepass.errors import UserError
from onepass.study.config import RunSpec
from onepass.study.errors import StudyError
from onepass.study.runs import Log, RunFunction, RunOutcome, log_line, outcome_line, run_one

USER_ERRORS = (UserError,)  # a run's error the user must fix comes back as its one line


def run_ray(
    specs: Sequence[RunSpec],
    address: str | None = None,
    cpus_per_run: float = 1.0,
    run: RunFunction = run_one,
    log: Log = log_line,
) -> list[RunOutcome]:
    """Every run as a Ray task; waits for all of them, then raises the first failure (a onepass error
    as its one line, anything else as Ray's error)."""
    try:
        import ray
    except ImportError:
        raise StudyError("--engine ray needs Ray: pip install 'onepass[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
        except ConnectionError as error:
            raise StudyError(f"--ray-address {address}: cannot join the Ray cluster ({error})") from None
        started = True
    try:
        remote = ray.remote(num_cpus=cpus_per_run)(run)
        pending = {remote.remote(spec): spec for spec in specs}
        log(f"submitted {len(pending)} runs to Ray ({cpus_per_run:g} CPU each)")
        outcomes: list[RunOutcome] = []
        failures: list[tuple[RunSpec, BaseException]] = []
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ready)
            try:
                outcome = ray.get(ready)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else error
                failures.append((spec, cause))
                log(f"[{len(outcomes) + len(failures)}/{len(specs)}] {spec.label}: failed ({_first_line(cause)})")
                continue
            outcomes.append(outcome)
            log(outcome_line(len(outcomes) + len(failures), len(specs), spec, outcome))
        if failures:
            spec, cause = failures[0]
            if isinstance(cause, USER_ERRORS):
                raise StudyError(f"{spec.label}: {cause} ({len(failures)} of {len(specs)} runs failed)") from None
            raise cause
        return outcomes
    finally:
        if started:
            ray.shutdown()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
