"""`bentoml serve` for `onepass serve`, in its process once the options are checked (serve/cli.py):
this process becomes BentoML's arbiter, the supervisor of the workers, and its exit status says
whether a worker failed to start.

    python -m onepass.serve.launch serve onepass.serve.service:Onepass --arg model=DIR   (the same, unchecked)

BentoML restarts a worker that exits, forever. A worker whose model cannot load stops the server
instead (serve/service.py, `stop_the_server`): it appends its one-line reason to the file named by
the environment variable STARTUP_FAILURE_ENV, which this process sets for the workers it starts, and
asks this process to shut down (SIGTERM). Once the server is down, this process prints that reason
as `onepass serve: error: ...` and exits with status 2, as the CLI does for every user error.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

STARTUP_FAILURE_ENV = "ONEPASS_SERVE_STARTUP_FAILURE"  # where a worker that cannot start says why
STARTUP_FAILURE_STATUS = 2  # the CLI's status for a user error (a model, backend or option that cannot work)


def run_bentoml(argv: Sequence[str]) -> int | str | None:
    """`bentoml ARGV...` in this process -> its exit status, or STARTUP_FAILURE_STATUS (with the
    reason printed) when a worker could not start."""
    with tempfile.TemporaryDirectory(prefix="onepass-serve-") as folder:
        failure = Path(folder) / "startup-failure.txt"
        os.environ[STARTUP_FAILURE_ENV] = str(failure)  # the workers inherit this process's environment
        from bentoml_cli.cli import cli

        try:
            cli.main(args=list(argv), prog_name="bentoml")
            status: int | str | None = 0
        except SystemExit as exit:
            status = exit.code
        reasons = failure.read_text().splitlines() if failure.is_file() else []
    if reasons:
        print(f"onepass serve: error: {reasons[0]}", file=sys.stderr, flush=True)
        return STARTUP_FAILURE_STATUS
    return status


def exit_now(status: int | str | None) -> NoReturn:
    """End the process with `status` (as sys.exit reads it) once the server is down, skipping
    Python's finalisation: with torch and onnxruntime loaded it spends seconds collecting garbage
    (SIGTERM to exit took 6-7 s against 0.8-1.0 s, measured on the loaded 2-core machine), and
    nothing is left to clean up: the workers have stopped, the sockets and temporary files are gone."""
    if isinstance(status, str):
        print(status, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status if isinstance(status, int) else (0 if status is None else 1))


if __name__ == "__main__":
    exit_now(run_bentoml(sys.argv[1:]))
