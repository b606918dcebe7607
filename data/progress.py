"""Progress of a long loop: a live bar on a terminal, a few plain lines anywhere else.

tqdm redraws its bar with carriage returns. Written to a file or a pipe (a CI log, `> run.log
2>&1`, a job scheduler's capture) every redraw becomes another partial line. So `progress_bar`
looks at the stream it writes to (stderr): a terminal gets tqdm's bar; anything else gets one line
each time another 10 % is done and a last line when the bar closes, e.g.

    train: 30% 66/224 step, 41.2 s, 1.6 step/s, loss=0.812
    train: 224/224 step in 139.0 s (1.6 step/s), loss=0.403

A transient bar (`leave=False`, e.g. evaluation inside training) writes only its last line. Every
stage's loops use this one helper (data is the earliest stage that has a long loop).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")

STEPS = 10  # without a terminal: a line each time another tenth of the total is done


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
    initial: int = 0,
    smoothing: float = 0.3,
    file: IO[str] | None = None,
) -> ProgressBar[T]:
    """A progress bar over `iterable` (iterate the result) or of `total` steps (call `update`).

    `enabled=False` shows nothing; `initial` is the count already done (a resumed run). The rate
    counts only this run's steps. `file` defaults to stderr."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return ProgressBar(iterable, total, desc, unit, enabled, leave, initial, smoothing, file or sys.stderr)


class ProgressBar(Generic[T]):
    def __init__(
        self,
        iterable: Iterable[T] | None,
        total: int | None,
        desc: str,
        unit: str,
        enabled: bool,
        leave: bool,
        initial: int,
        smoothing: float,
        file: IO[str],
    ):
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.leave = leave
        self.initial = initial
        self.n = initial
        self.file = file
        self.postfix: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.closed = False
        self._bar = None
        self._lines = enabled and not _is_terminal(file)
        self._last_step = self._step(initial)
        if enabled and not self._lines:
            from tqdm import tqdm  # only on a terminal: `import onepass.<stage>` stays light

            self._bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=file,
                dynamic_ncols=True, smoothing=smoothing,
            )  # fmt: skip

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("progress_bar() was given no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:  # the loop ended (or was left): the bar is done, as tqdm's is
            self.close()

    def __enter__(self) -> ProgressBar[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines and self.leave and self.total:
            step = self._step(self.n)
            if step > self._last_step and self.n < self.total:  # the last line comes from close()
                self._last_step = step
                self._write(f"{100 * self.n // self.total}% {self.n}/{self.total} {self.unit}, {self._timing()}")

    def set_postfix(self, **values: Any) -> None:
        """Shown after the counts: on the bar at once, on the next line without a terminal."""
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._lines and self.n > self.initial:  # nothing done, nothing to report
            seconds = time.perf_counter() - self.started
            count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
            rate = (self.n - self.initial) / seconds if seconds > 0 else 0.0
            self._write(f"{count} {self.unit} in {seconds:.1f} s ({rate:.1f} {self.unit}/s)")

    def _step(self, n: int) -> int:
        return n * STEPS // self.total if self.total else 0  # integers: 3/10 is exactly the third tenth

    def _timing(self) -> str:
        seconds = time.perf_counter() - self.started
        rate = (self.n - self.initial) / seconds if seconds > 0 else 0.0
        return f"{seconds:.1f} s, {rate:.1f} {self.unit}/s"

    def _write(self, text: str) -> None:
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {text}{extra}", file=self.file, flush=True)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
