"""The progress helper: tqdm's bar on a terminal; a line per 10 % and a last line anywhere else."""

from __future__ import annotations

import io

from onepass.data.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_without_a_terminal_a_line_per_tenth_and_a_last_line():
    log = io.StringIO()
    with progress_bar(total=30, desc="train", unit="step", file=log) as bar:
        for step in range(30):
            bar.update(1)
            if step == 13:  # after the 14th step: on the 15th step's line (50 %)
                bar.set_postfix(loss="0.50")
    got = lines(log)
    assert "\r" not in log.getvalue()
    assert [line.split(" ")[1] for line in got[:-1]] == [f"{p}%" for p in range(10, 100, 10)]  # 3/30 is 10 %
    assert got[0].startswith("train: 10% 3/30 step, ") and got[0].endswith(" step/s")
    assert got[4].startswith("train: 50% 15/30 step, ") and got[4].endswith(", loss=0.50")
    assert got[-1].startswith("train: 30/30 step in ") and got[-1].endswith(" step/s), loss=0.50")


def test_a_resumed_count_starts_at_its_tenth_and_rates_only_this_run():
    log = io.StringIO()
    with progress_bar(total=10, desc="train", unit="step", initial=6, file=log) as bar:
        bar.update(4)
    got = lines(log)
    assert [line.split(" ")[1] for line in got[:-1]] == []  # 60 % -> 100 % in one update: just the last line
    assert got[-1].startswith("train: 10/10 step in ")


def test_an_iterable_a_transient_bar_and_nothing_done():
    log = io.StringIO()
    assert list(progress_bar(range(20), desc="evaluate", unit="batch", leave=False, file=log)) == list(range(20))
    got = lines(log)
    assert len(got) == 1 and got[0].startswith("evaluate: 20/20 batch in ")  # leave=False: the last line only
    empty = io.StringIO()
    progress_bar(total=5, desc="predict", unit="img", file=empty).close()
    assert empty.getvalue() == ""  # nothing done, nothing said
    silent = io.StringIO()
    with progress_bar(total=5, desc="predict", unit="img", enabled=False, file=silent) as bar:
        bar.update(5)
    assert silent.getvalue() == ""


def test_on_a_terminal_it_is_tqdms_bar():
    screen = Terminal()
    with progress_bar(total=4, desc="synth", unit="img", file=screen) as bar:
        bar.update(4)
    assert "\r" in screen.getvalue() and "synth: 100%" in screen.getvalue() and "4/4" in screen.getvalue()
