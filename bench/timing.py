"""The one timing loop of `onepass bench` and benchmarks/: warm-up calls, then at least N timed calls
and at least S seconds, summarised as latency percentiles and throughput.

A call may time its own phases (the bench's preprocess / model / post-process): it returns
{phase: seconds} and each phase gets its own statistics beside the whole call's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Latency samples summarised, in milliseconds. p99 of few samples is near the max, so `n`
    travels with it; with no samples (n = 0) every figure is None."""

    n: int
    mean: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @classmethod
    def of_seconds(cls, seconds: Sequence[float]) -> LatencyStats:
        if not len(seconds):
            return cls(0)
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(int(ms.size), float(ms.mean()), float(ms.min()), float(p50), float(p90), float(p99))

    def scaled(self, factor: float) -> LatencyStats:
        """Every figure times `factor` (per image from per batch: 1 / batch)."""
        return LatencyStats(self.n, *(None if v is None else v * factor for v in self._figures()))

    @classmethod
    def summed(cls, stats: Sequence[LatencyStats]) -> LatencyStats:
        """Several models run one after another: each figure summed (the median of N models back to back
        taken as the sum of their medians); `n` is the fewest samples. One model: its own statistics."""
        if len(stats) == 1:
            return stats[0]
        if any(s.n == 0 for s in stats):
            return cls(0)
        return cls(
            min(s.n for s in stats), *(sum(values) for values in zip(*(s._figures() for s in stats), strict=True))
        )

    def _figures(self) -> tuple[float | None, ...]:
        return self.mean, self.min, self.p50, self.p90, self.p99


@dataclass(frozen=True)
class Timing:
    """What `time_calls` measured: the whole call's latency, each phase's (where the call timed its
    phases), and the throughput, items per call over the mean call time."""

    latency: LatencyStats
    items_per_call: int
    throughput_per_s: float | None
    elapsed_s: float  # wall time of the timed calls
    first_call_s: float | None  # the very first call, warm-up or not: compilation, engine building, lazy set-up
    phases: dict[str, LatencyStats] = field(default_factory=dict)


Call = Callable[[], Mapping[str, float] | None]


def time_calls(call: Call, *, warmup: int = 3, runs: int = 10, seconds: float = 2.0, items: int = 1) -> Timing:
    """`warmup` untimed calls, then calls until at least `runs` are timed and at least `seconds` have
    passed. `call` returns None, or {phase: seconds} for the phases it timed itself."""
    first_call_s = None
    for _ in range(warmup):
        start = time.perf_counter()
        call()
        if first_call_s is None:
            first_call_s = time.perf_counter() - start
    totals: list[float] = []
    phases: dict[str, list[float]] = {}
    began = time.perf_counter()
    while len(totals) < runs or time.perf_counter() - began < seconds:
        start = time.perf_counter()
        split = call()
        totals.append(time.perf_counter() - start)
        for phase, value in (split or {}).items():
            phases.setdefault(phase, []).append(value)
    elapsed = time.perf_counter() - began
    latency = LatencyStats.of_seconds(totals)
    return Timing(
        latency=latency,
        items_per_call=items,
        throughput_per_s=items / (latency.mean / 1e3) if latency.mean else None,
        elapsed_s=elapsed,
        first_call_s=first_call_s if first_call_s is not None else (totals[0] if totals else None),
        phases={phase: LatencyStats.of_seconds(values) for phase, values in phases.items()},
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


PREDICT_PHASES = ("preprocess", "model", "postprocess")


def predict_phases(predictor, images: list, frames: bool = False) -> dict[str, float]:
    """One `predict` of `images`, in seconds per phase (PREDICT_PHASES): resizing, `run` and the
    results; or, with `frames` (a backend with the frame-size graph), stacking the frames, the graph
    (`run_frames`: both resizes and the model) and slicing."""
    if frames:
        prepare, run, finish = predictor.stack_frames, predictor.run_frames, predictor.frame_results
    else:
        prepare, run, finish = predictor.preprocess, predictor.run, predictor.postprocess
    t0 = time.perf_counter()
    inputs, sizes = prepare(images)
    t1 = time.perf_counter()
    outputs = run(inputs)
    t2 = time.perf_counter()
    finish(outputs, sizes)
    return dict(zip(PREDICT_PHASES, (t1 - t0, t2 - t1, time.perf_counter() - t2), strict=True))
