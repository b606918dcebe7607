"""serve/batching.py: concurrent calls share forward passes, each gets its own slice back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from onepass.serve.batching import BatchingBackend, ServiceUnavailable


class SlowBackend:
    """Outputs derived from each image (so a mixed-up slice shows), after a pause per forward pass."""

    name = "slow"

    def __init__(self, seconds: float = 0.05, fail: bool = False):
        self.seconds = seconds
        self.fail = fail
        self.batches: list[int] = []
        self.threads: list[str] = []
        self.started = threading.Event()

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.started.set()
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the device fell over")
        self.batches.append(len(images))
        self.threads.append(threading.current_thread().name)
        return {"id": images[:, 0, 0, 0].astype(np.int64), "mean": images.mean(axis=(1, 2, 3))}


def image(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 2, 2, 3), i, np.uint8)


def test_a_lone_call_runs_at_once_and_concurrent_calls_share_passes():
    backend = SlowBackend()
    observed: list[int] = []
    batching = BatchingBackend(backend, max_batch_size=8, max_latency_ms=10_000, on_batch=observed.append)
    start = time.perf_counter()
    assert batching.run(image(3))["id"].tolist() == [3]
    assert time.perf_counter() - start < 0.05 + 0.04  # no batching window to wait out
    assert backend.threads == [threading.current_thread().name]  # and no hand-off to the model thread
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda i: batching.run(image(i)), range(24)))
    assert [r["id"].tolist() for r in results] == [[i] for i in range(24)]  # every caller got its own slice
    assert max(backend.batches) > 1 and max(backend.batches) <= 8
    assert sum(backend.batches) == 25 and observed == backend.batches
    assert "onepass-model" in backend.threads  # the queued ones were batched by the model thread
    batching.close()


def test_multi_image_calls_keep_their_images_together_and_a_large_one_runs_alone():
    backend = SlowBackend()
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=10_000)
    with ThreadPoolExecutor(3) as pool:
        sizes = [3, 10, 2]
        results = list(pool.map(lambda n: batching.run(image(n, n)), sizes))
    for n, result in zip(sizes, results, strict=True):
        assert result["id"].tolist() == [n] * n
    assert 10 in backend.batches and all(b <= 4 for b in backend.batches if b != 10)
    batching.close()


def test_a_request_that_waited_too_long_is_refused_not_run_late():
    backend = SlowBackend(seconds=0.3)
    batching = BatchingBackend(backend, max_batch_size=2, max_latency_ms=100)
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(batching.run, image(0))
        backend.started.wait()
        queued = [pool.submit(batching.run, image(i)) for i in range(1, 5)]  # wait behind a 0.3 s pass
        assert first.result()["id"].tolist() == [0]
        for future in queued:
            with pytest.raises(ServiceUnavailable, match="overloaded"):
                future.result()
    assert backend.batches == [1]
    batching.close()


def test_a_failed_pass_fails_its_callers_and_the_next_pass_still_runs():
    backend = SlowBackend(seconds=0.01, fail=True)
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=10_000)
    with pytest.raises(RuntimeError, match="fell over"):
        batching.run(image(1))
    backend.fail = False
    assert batching.run(image(2))["id"].tolist() == [2]
    batching.close()
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        batching.run(image(3))
