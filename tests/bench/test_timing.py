"""The one timing loop: warm-up calls are not timed, at least N calls and S seconds are, phases are
summarised beside the whole call, and the statistics are those of the samples."""

from __future__ import annotations

import time

import numpy as np
import pytest

from onepass.bench.timing import LatencyStats, time_calls


def test_warmup_runs_and_phases_are_counted():
    calls = []

    def call() -> dict[str, float]:
        calls.append(len(calls))
        return {"a": 0.001 * len(calls), "b": 0.002}

    timing = time_calls(call, warmup=2, runs=5, seconds=0, items=4)
    assert len(calls) == 7 and timing.latency.n == 5  # the 2 warm-up calls are not in the statistics
    assert set(timing.phases) == {"a", "b"} and timing.phases["a"].n == 5
    assert timing.phases["a"].min == pytest.approx(3.0) and timing.phases["a"].p50 == pytest.approx(5.0)  # calls 3..7
    assert timing.phases["b"].p99 == pytest.approx(2.0)
    assert timing.throughput_per_s == pytest.approx(4 / (timing.latency.mean / 1e3))
    assert timing.first_call_s is not None and timing.first_call_s <= timing.elapsed_s + 1


def test_runs_for_at_least_the_seconds_asked():
    timing = time_calls(lambda: time.sleep(0.01), warmup=0, runs=1, seconds=0.1)
    assert timing.latency.n >= 5 and timing.elapsed_s >= 0.1
    assert timing.latency.min >= 10 and timing.phases == {}  # milliseconds; no phases when the call times none


def test_stats_are_the_samples_percentiles():
    seconds = [0.004, 0.001, 0.003, 0.002, 0.010]
    stats = LatencyStats.of_seconds(seconds)
    ms = np.array(seconds) * 1e3
    assert stats.n == 5 and stats.min == pytest.approx(1.0) and stats.mean == pytest.approx(ms.mean())
    assert (stats.p50, stats.p90, stats.p99) == pytest.approx(tuple(np.percentile(ms, [50, 90, 99])))
    assert LatencyStats.of_seconds([]) == LatencyStats(0)
    assert stats.scaled(0.5).p50 == pytest.approx(stats.p50 / 2) and stats.scaled(0.5).n == 5
    other = LatencyStats.of_seconds([0.001, 0.002])
    summed = LatencyStats.summed([stats, other])
    assert summed.n == 2 and summed.p50 == pytest.approx(stats.p50 + other.p50)
    assert LatencyStats.summed([stats]) is stats and LatencyStats.summed([stats, LatencyStats(0)]).n == 0
