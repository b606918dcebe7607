"""Latency samples -> the summary every bench table shows (milliseconds)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """{"n", "mean", "min", "p50", "p90", "p99"} in milliseconds; p99 of few samples is near the max,
    so `n` travels with it."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "n": int(ms.size),
        "mean": float(ms.mean()),
        "min": float(ms.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator
