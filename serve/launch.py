"""BentoML's server for `onepass serve`, run in its process once the options are checked: the
`bentoml` command line (`bentoml serve onepass.serve.service:Onepass ...`) in process, so this
process becomes BentoML's arbiter, which starts and supervises the workers; and an exit status that
says whether a worker failed to start.

    python -m onepass.serve.launch serve onepass.serve.service:Onepass --arg model=DIR   (the same, unchecked)

BentoML restarts a worker that exits, forever. A worker whose model cannot load stops the server
instead (serve/service.py, `stop_the_server`): it appends its one-line reason to the file named by
the environment variable STARTUP_FAILURE_ENV, which this process sets for the workers it starts, and
asks this process to shut down (SIGTERM). Once the server is down, this process prints that reason
as `onepass serve: error: ...` and exits with status 2, as the CLI does for every user error.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

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


if __name__ == "__main__":
    sys.exit(run_bentoml(sys.argv[1:]))
