"""`python -m tests.predict.paused_predict N ARGS...`: `onepass predict ARGS` that stops making progress
once N table rows are committed, and waits to be killed.

A kill-and-resume test can then kill a run that is known to be part-way, on a machine of any speed:
the run cannot finish first, and its last rows are known to be committed (the workers may still
be writing later chunks, which is part of what a resumed run must cope with).
"""

from __future__ import annotations

import sys
import time

from onepass.cli import main
from onepass.predict.outputs import OutputFolder


def pause_after(rows: int) -> None:
    add_rows = OutputFolder.add_rows
    committed = 0

    def add_rows_then_pause(self: OutputFolder, new_rows) -> None:
        nonlocal committed
        add_rows(self, new_rows)
        committed += len(new_rows)
        while committed >= rows:  # the driver stops here; the test kills the process
            time.sleep(3600)

    OutputFolder.add_rows = add_rows_then_pause  # this process only: a test helper, never imported by onepass


if __name__ == "__main__":
    pause_after(int(sys.argv[1]))
    sys.exit(main(["predict", *sys.argv[2:]]))
